//! URL-prefix correction (all strings are Latin-1, one char per byte, as in the environ): which part of the path is SCRIPT_NAME (where the app is mounted) and
//! which is PATH_INFO (the path inside the app), whatever the front end sent.
//!
//! Front ends disagree. lighttpd mounted at `/app` sends `SCRIPT_NAME=/app`, `PATH_INFO=/x`
//! (already right); mounted at `/` it sends the whole path as SCRIPT_NAME and no PATH_INFO, as do
//! nginx's stock `fastcgi_params` and Apache mod_proxy_fcgi; nginx's `scgi_params` send neither.
//! A rewrite through `mysite.fcgi` (the seed guide's set-up) leaves `SCRIPT_NAME=/mysite.fcgi`,
//! which Django would put in every `{% url %}`. The rules, in order:
//!
//! 1. `SCRIPT_URL` or `REDIRECT_URL` (Apache mod_rewrite) is the original path: SCRIPT_NAME is
//!    it minus PATH_INFO at its end (what Django's `get_script_name` does).
//! 2. No PATH_INFO: the app is at the root (as mod_wsgi's `WSGIScriptAlias /` gives):
//!    SCRIPT_NAME is empty and PATH_INFO the whole path (the original path of rule 1 if there
//!    is one, else SCRIPT_NAME, else REQUEST_URI's path).
//! 3. REQUEST_URI's path does not start with SCRIPT_NAME + PATH_INFO but ends with PATH_INFO
//!    (an internal rewrite to `/mysite.fcgi/...`): SCRIPT_NAME is what REQUEST_URI has in front.
//! 4. `--script-name PREFIX` last: SCRIPT_NAME is PREFIX and PATH_INFO the full path with PREFIX
//!    removed from its front (when it is there, at a segment boundary).

/// The request variables that decide the split, as the front end sent them.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct PathVars<'a> {
    pub(crate) script_name: Option<&'a str>,
    pub(crate) path_info: Option<&'a str>,
    pub(crate) request_uri: Option<&'a str>,
    pub(crate) script_url: Option<&'a str>,
    pub(crate) redirect_url: Option<&'a str>,
}

/// SCRIPT_NAME and PATH_INFO as the application should see them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Split {
    pub(crate) script_name: String,
    pub(crate) path_info: String,
}

/// Applies the rules above; `forced` is `--script-name`.
pub(crate) fn split(v: PathVars<'_>, forced: Option<&str>) -> Split {
    let script = v.script_name.unwrap_or("");
    let info = v.path_info.unwrap_or("");
    let uri_path = v
        .request_uri
        .map(|u| percent_decode(u.split('?').next().unwrap_or("")));
    let original = v
        .script_url
        .filter(|s| !s.is_empty())
        .or(v.redirect_url.filter(|s| !s.is_empty()));
    let original = original.map(collapse_slashes);
    let (mut script, mut info) = if let Some(url) = original.as_ref().filter(|_| !info.is_empty()) {
        (
            url.strip_suffix(info).unwrap_or(url).to_string(),
            info.to_string(),
        )
    } else if info.is_empty() {
        let full = match (&original, script.is_empty()) {
            (Some(url), _) => url.clone(),
            (None, false) => script.to_string(),
            (None, true) => uri_path.clone().unwrap_or_default(),
        };
        (String::new(), full)
    } else {
        match &uri_path {
            Some(p) if !p.starts_with(&format!("{script}{info}")) && p.ends_with(info) => {
                (p[..p.len() - info.len()].to_string(), info.to_string())
            }
            _ => (script.to_string(), info.to_string()),
        }
    };
    if let Some(prefix) = forced {
        let prefix = prefix.trim_end_matches('/');
        let full = format!("{script}{info}");
        info = match full.strip_prefix(prefix) {
            Some(rest) if rest.is_empty() || rest.starts_with('/') => rest.to_string(),
            _ => full,
        };
        script = prefix.to_string();
    }
    if script == "/" {
        script.clear();
    }
    if info.is_empty() && script.is_empty() {
        info.push('/');
    }
    Split {
        script_name: script,
        path_info: info,
    }
}

fn collapse_slashes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '/' && out.ends_with('/') {
            continue;
        }
        out.push(c);
    }
    out
}

/// Decodes `%XX` escapes in a Latin-1 string (one char per byte, as PEP 3333 carries request
/// variables); the result is Latin-1 too. Invalid escapes stay as they are.
pub(crate) fn percent_decode(s: &str) -> String {
    let b: Vec<u8> = s.chars().map(|c| c as u32 as u8).collect();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out.iter().map(|&c| c as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(script: Option<&'a str>, info: Option<&'a str>, uri: &'a str) -> PathVars<'a> {
        PathVars {
            script_name: script,
            path_info: info,
            request_uri: Some(uri),
            ..PathVars::default()
        }
    }

    fn s(script: &str, info: &str) -> Split {
        Split {
            script_name: script.into(),
            path_info: info.into(),
        }
    }

    #[test]
    fn lighttpd_under_a_prefix_is_kept() {
        let v = vars(Some("/app"), Some("/polls/1/"), "/app/polls/1/?x=1");
        assert_eq!(split(v, None), s("/app", "/polls/1/"));
    }

    #[test]
    fn whole_path_script_name_moves_to_path_info() {
        // lighttpd at "/", nginx's fastcgi_params, Apache mod_proxy_fcgi.
        let v = vars(Some("/polls/1/"), None, "/polls/1/");
        assert_eq!(split(v, None), s("", "/polls/1/"));
        let v = vars(Some("/"), Some(""), "/");
        assert_eq!(split(v, None), s("", "/"));
    }

    #[test]
    fn no_script_name_takes_the_decoded_request_uri() {
        // nginx scgi_params.
        let v = vars(None, None, "/a%20b/c?q=%20");
        assert_eq!(split(v, None), s("", "/a b/c"));
        assert_eq!(split(PathVars::default(), None), s("", "/"));
    }

    #[test]
    fn rewrite_through_fcgi_recovers_the_prefix() {
        // lighttpd: url.rewrite-once "^(/.*)$" => "/mysite.fcgi$1"
        let v = vars(Some("/mysite.fcgi"), Some("/polls/"), "/polls/");
        assert_eq!(split(v, None), s("", "/polls/"));
        let v = vars(Some("/mysite.fcgi"), Some("/polls/"), "/blog/polls/");
        assert_eq!(split(v, None), s("/blog", "/polls/"));
    }

    #[test]
    fn script_url_wins() {
        let v = PathVars {
            script_name: Some("/mysite.fcgi"),
            path_info: Some("/polls/"),
            request_uri: Some("/site//polls/"),
            script_url: Some("/site//polls/"),
            redirect_url: None,
        };
        assert_eq!(split(v, None), s("/site", "/polls/"));
        let v = PathVars {
            redirect_url: Some("/x/polls/"),
            script_url: Some(""),
            ..v
        };
        assert_eq!(split(v, None), s("/x", "/polls/"));
        // No PATH_INFO: the client's path is the whole path.
        let v = PathVars {
            script_name: Some("/app/polls/"),
            path_info: None,
            request_uri: Some("/site/polls/"),
            script_url: Some("/site/polls/"),
            redirect_url: None,
        };
        assert_eq!(split(v, None), s("", "/site/polls/"));
        assert_eq!(split(v, Some("/site")), s("/site", "/polls/"));
    }

    #[test]
    fn forced_prefix() {
        let v = vars(Some("/app/polls/"), None, "/app/polls/");
        assert_eq!(split(v, Some("/app")), s("/app", "/polls/"));
        assert_eq!(split(v, Some("/app/")), s("/app", "/polls/"));
        // Not at a segment boundary: the whole path stays PATH_INFO.
        let v = vars(Some("/apple/"), None, "/apple/");
        assert_eq!(split(v, Some("/app")), s("/app", "/apple/"));
        // The prefix alone.
        let v = vars(Some("/app"), None, "/app");
        assert_eq!(split(v, Some("/app")), s("/app", ""));
        // Mounted at the root.
        let v = vars(Some("/mysite.fcgi"), Some("/x"), "/mysite.fcgi/x");
        assert_eq!(split(v, Some("")), s("", "/mysite.fcgi/x"));
    }

    #[test]
    fn decoding() {
        assert_eq!(percent_decode("/a%2Fb%zz%4"), "/a/b%zz%4");
        assert_eq!(percent_decode("/caf%C3%A9"), "/caf\u{c3}\u{a9}");
        assert_eq!(percent_decode("/%E9"), "/\u{e9}");
    }
}

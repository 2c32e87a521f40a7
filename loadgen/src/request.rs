//! The request, encoded once before the run with the engine's client-side codecs (HTTP/1.1 by
//! hand): per request only the FastCGI request id is patched.

use proto::{ajp, fcgi, scgi};

use crate::cli::Config;
use crate::target::Protocol;

/// The encoded request of a run.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// What is written to start a request (AJP: the Forward Request and the first body packet).
    pub bytes: Vec<u8>,
    /// FastCGI: where the request ids are in `bytes`.
    pub fcgi_slots: Option<fcgi::RequestIdSlots>,
    /// The request body (AJP sends the rest of it on GET_BODY_CHUNK).
    pub body: Vec<u8>,
    /// AJP: body bytes carried by `bytes`.
    pub ajp_first_sent: usize,
    /// AJP: the packet size.
    pub ajp_packet_size: ajp::PacketSize,
}

/// Why the request could not be encoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// SCGI refused a name or value.
    #[error("SCGI request: {0}")]
    Scgi(#[from] scgi::EncodeError),
    /// AJP refused the request head.
    #[error("AJP request: {0}")]
    Ajp(#[from] ajp::EncodeError),
    /// FastCGI framing (cannot happen with the engine's encoder).
    #[error("FastCGI request: {0}")]
    Fcgi(#[from] fcgi::SlotsError),
}

/// The request variables for FastCGI and SCGI: derived from TARGET, headers as HTTP_*, then the
/// `--param` overrides (replacing a derived one of the same name, or added).
pub fn cgi_vars(config: &Config) -> Vec<(String, String)> {
    let t = &config.target;
    let mut vars: Vec<(String, String)> = vec![
        ("REQUEST_METHOD".into(), config.method.clone()),
        ("SCRIPT_NAME".into(), t.path.clone()),
        ("REQUEST_URI".into(), t.uri()),
        ("DOCUMENT_URI".into(), t.path.clone()),
        ("QUERY_STRING".into(), t.query.clone()),
        ("SERVER_PROTOCOL".into(), "HTTP/1.1".into()),
        ("GATEWAY_INTERFACE".into(), "CGI/1.1".into()),
        ("SERVER_SOFTWARE".into(), "ringfast-load".into()),
        ("SERVER_NAME".into(), t.server_name().to_string()),
        ("SERVER_PORT".into(), t.server_port().to_string()),
        ("REMOTE_ADDR".into(), "127.0.0.1".into()),
        ("REMOTE_PORT".into(), "0".into()),
        ("SCRIPT_FILENAME".into(), t.path.clone()),
        ("HTTP_HOST".into(), host_header(config)),
    ];
    let mut content_type = None;
    for (name, value) in &config.headers {
        if name.eq_ignore_ascii_case("content-type") {
            content_type = Some(value.clone());
        } else if name.eq_ignore_ascii_case("content-length") {
            continue;
        } else {
            let var = format!("HTTP_{}", name.to_ascii_uppercase().replace('-', "_"));
            set(&mut vars, &var, value);
        }
    }
    if !config.body.is_empty() {
        vars.push(("CONTENT_LENGTH".into(), config.body.len().to_string()));
        vars.push((
            "CONTENT_TYPE".into(),
            content_type.unwrap_or_else(|| "application/octet-stream".into()),
        ));
    } else if let Some(ct) = content_type {
        vars.push(("CONTENT_TYPE".into(), ct));
    }
    for (name, value) in &config.params {
        set(&mut vars, name, value);
    }
    vars
}

fn set(vars: &mut Vec<(String, String)>, name: &str, value: &str) {
    match vars.iter_mut().find(|(n, _)| n == name) {
        Some(slot) => slot.1 = value.to_string(),
        None => vars.push((name.to_string(), value.to_string())),
    }
}

fn host_header(config: &Config) -> String {
    match config.target.server_port() {
        0 => "localhost".into(),
        port => format!("{}:{port}", config.target.server_name()),
    }
}

/// Encodes the request of `config`.
pub fn encode(config: &Config) -> Result<Encoded, EncodeError> {
    let mut encoded = Encoded {
        bytes: Vec::new(),
        fcgi_slots: None,
        body: config.body.clone(),
        ajp_first_sent: 0,
        ajp_packet_size: config.ajp_packet_size,
    };
    match config.target.protocol {
        Protocol::Fcgi => encode_fcgi(config, &mut encoded)?,
        Protocol::Scgi => encode_scgi(config, &mut encoded.bytes)?,
        Protocol::Ajp => encode_ajp(config, &mut encoded)?,
        Protocol::Http => encode_http(config, &mut encoded.bytes),
    }
    Ok(encoded)
}

fn as_pairs(vars: &[(String, String)]) -> Vec<(&[u8], &[u8])> {
    vars.iter()
        .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
        .collect()
}

/// BEGIN_REQUEST, PARAMS, STDIN with request id 1, and where the ids are.
fn encode_fcgi(config: &Config, out: &mut Encoded) -> Result<(), EncodeError> {
    let vars = cgi_vars(config);
    let pairs = as_pairs(&vars);
    fcgi::encode_request(
        &mut out.bytes,
        &fcgi::RequestSpec {
            request_id: 1,
            keep_conn: config.keepalive,
            params: &pairs,
            body: &config.body,
        },
    );
    out.fcgi_slots = Some(fcgi::RequestIdSlots::find(&out.bytes)?);
    Ok(())
}

/// The netstring head (CONTENT_LENGTH and SCGI first, written by the codec) and the body.
fn encode_scgi(config: &Config, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let vars = cgi_vars(config);
    let pairs = vars
        .iter()
        .filter(|(n, _)| n != "CONTENT_LENGTH" && n != "SCGI")
        .map(|(n, v)| (n.as_bytes(), v.as_bytes()));
    scgi::encode_request_with_body(pairs, &config.body, out)?;
    Ok(())
}

/// The Forward Request and the first body packet.
fn encode_ajp(config: &Config, out: &mut Encoded) -> Result<(), EncodeError> {
    let mut headers: Vec<(String, String)> = vec![("Host".into(), host_header(config))];
    headers.extend(
        config
            .headers
            .iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case("content-length"))
            .cloned(),
    );
    if !config.body.is_empty() {
        headers.push(("Content-Length".into(), config.body.len().to_string()));
    }
    if !config.keepalive {
        headers.push(("Connection".into(), "close".into()));
    }
    let header_pairs = as_pairs(&headers);
    let t = &config.target;
    let mut attributes = Vec::new();
    if !t.query.is_empty() {
        attributes.push(ajp::Attribute::QueryString(Some(t.query.as_bytes())));
    }
    if let Some(secret) = &config.ajp_secret {
        attributes.push(ajp::Attribute::Secret(Some(secret.as_bytes())));
    }
    let head = ajp::RequestHead {
        method: config.method.as_bytes(),
        protocol: Some(b"HTTP/1.1"),
        req_uri: Some(t.path.as_bytes()),
        remote_addr: Some(b"127.0.0.1"),
        remote_host: None,
        server_name: Some(t.server_name().as_bytes()),
        server_port: t.server_port(),
        is_ssl: false,
        headers: &header_pairs,
        attributes: &attributes,
    };
    ajp::encode_forward_request(&head, config.ajp_packet_size, &mut out.bytes)?;
    out.ajp_first_sent =
        ajp::first_body_packet(&config.body, config.ajp_packet_size, &mut out.bytes);
    Ok(())
}

/// Request line, Host, User-Agent, the -H headers, Content-Length, Connection: close without
/// keep-alive, then the body.
fn encode_http(config: &Config, out: &mut Vec<u8>) {
    use std::fmt::Write as _;
    let mut head = String::new();
    // Writing into a String cannot fail.
    let _ = write!(
        head,
        "{} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: ringfast-load\r\n",
        config.method,
        config.target.uri(),
        host_header(config)
    );
    for (name, value) in &config.headers {
        if !name.eq_ignore_ascii_case("content-length") {
            let _ = write!(head, "{name}: {value}\r\n");
        }
    }
    if !config.body.is_empty() {
        let _ = write!(head, "Content-Length: {}\r\n", config.body.len());
    }
    if !config.keepalive {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(&config.body);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Args;
    use clap::Parser;

    fn config(argv: &[&str]) -> Config {
        let mut full = vec!["ringfast-load"];
        full.extend_from_slice(argv);
        Config::from_args(Args::try_parse_from(full).unwrap()).unwrap()
    }

    fn var<'a>(vars: &'a [(String, String)], name: &str) -> Option<&'a str> {
        vars.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn variables_from_the_target_headers_and_params() {
        let c = config(&[
            "-H",
            "X-Trace-Id: 7",
            "-H",
            "Content-Type: text/csv",
            "--body-size",
            "3",
            "--param",
            "SCRIPT_FILENAME=/srv/a.php",
            "--param",
            "EXTRA=1",
            "fcgi://127.0.0.1:9000/a.php?x=1",
        ]);
        let v = cgi_vars(&c);
        assert_eq!(var(&v, "REQUEST_METHOD"), Some("GET"));
        assert_eq!(var(&v, "SCRIPT_NAME"), Some("/a.php"));
        assert_eq!(var(&v, "REQUEST_URI"), Some("/a.php?x=1"));
        assert_eq!(var(&v, "QUERY_STRING"), Some("x=1"));
        assert_eq!(var(&v, "SERVER_PORT"), Some("9000"));
        assert_eq!(var(&v, "HTTP_X_TRACE_ID"), Some("7"));
        assert_eq!(var(&v, "CONTENT_TYPE"), Some("text/csv"));
        assert_eq!(var(&v, "CONTENT_LENGTH"), Some("3"));
        assert_eq!(var(&v, "SCRIPT_FILENAME"), Some("/srv/a.php"));
        assert_eq!(var(&v, "EXTRA"), Some("1"));
        assert_eq!(v.iter().filter(|(n, _)| n == "SCRIPT_FILENAME").count(), 1);
    }

    #[test]
    fn http_request_bytes() {
        let c = config(&[
            "-m",
            "POST",
            "--body-size",
            "2",
            "--no-keepalive",
            "http://127.0.0.1:8080/p?q",
        ]);
        let e = encode(&c).unwrap();
        assert_eq!(
            String::from_utf8(e.bytes).unwrap(),
            "POST /p?q HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: ringfast-load\r\n\
Content-Length: 2\r\nConnection: close\r\n\r\nab"
        );
    }

    #[test]
    fn fcgi_request_has_one_slot_per_record() {
        let c = config(&["fcgi://127.0.0.1:9000/hello"]);
        let e = encode(&c).unwrap();
        // BEGIN_REQUEST, PARAMS, empty PARAMS, empty STDIN.
        assert_eq!(e.fcgi_slots.unwrap().records(), 4);
        assert_eq!(e.bytes[2..4], [0, 1]);
    }

    #[test]
    fn scgi_request_starts_with_content_length() {
        let c = config(&["--body-size", "4", "scgi://127.0.0.1:9000/x"]);
        let e = encode(&c).unwrap();
        let colon = e.bytes.iter().position(|&b| b == b':').unwrap();
        assert!(e.bytes[colon + 1..].starts_with(b"CONTENT_LENGTH\x004\x00SCGI\x001\x00"));
        assert!(e.bytes.ends_with(b",abcd"));
    }

    #[test]
    fn ajp_request_decodes_as_a_forward_request() {
        let c = config(&[
            "-m",
            "PUT",
            "--body-size",
            "5",
            "ajp://127.0.0.1:8009/up?k=v",
        ]);
        let e = encode(&c).unwrap();
        let ajp::Status::Complete((ajp::ServerPacket::ForwardRequest(fr), used)) =
            ajp::decode_server_packet(&e.bytes, ajp::PacketSize::DEFAULT).unwrap()
        else {
            panic!("not a forward request");
        };
        assert_eq!(fr.method(), b"PUT");
        assert_eq!(fr.req_uri(), Some(&b"/up"[..]));
        assert_eq!(fr.query_string(), Some(&b"k=v"[..]));
        assert_eq!(fr.content_length(), Some(5));
        assert_eq!(&e.bytes[used..], b"\x12\x34\x00\x07\x00\x05abcde");
        assert_eq!(e.ajp_first_sent, 5);
    }
}

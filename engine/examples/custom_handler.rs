//! A custom Rust handler served over FastCGI: greets by name, counts requests per worker, and
//! uppercases a streamed request body.
//!
//! ```text
//! cargo run -p engine --example custom_handler -- --fastcgi 127.0.0.1:9000
//! REQUEST_METHOD=GET SCRIPT_NAME=/greet QUERY_STRING=name=Ana cgi-fcgi -bind -connect 127.0.0.1:9000
//! echo -n abc | REQUEST_METHOD=POST SCRIPT_NAME=/upper CONTENT_LENGTH=3 \
//!     cgi-fcgi -bind -connect 127.0.0.1:9000
//! ```

use std::cell::Cell;

use clap::Parser;
use engine::app::{Handler, HandlerError, Request, Response};
use engine::config::Config;
use engine::server::{signals, Server};

/// One instance per worker thread: `Cell` is enough, no locks.
struct Greeter {
    worker: usize,
    served: Cell<u64>,
}

impl Handler for Greeter {
    async fn handle(&self, req: &mut Request, resp: &mut Response) -> Result<(), HandlerError> {
        self.served.set(self.served.get() + 1);
        resp.add_header("Content-Type", "text/plain; charset=utf-8")?;
        if req.path().ends_with("/upper") {
            // Stream the body through: never more than one buffer in memory.
            let mut buf = [0u8; 8192];
            loop {
                let n = req.read(&mut buf).await?;
                if n == 0 {
                    return Ok(());
                }
                buf[..n].make_ascii_uppercase();
                resp.write(&buf[..n]).await?;
            }
        }
        let name = req
            .query()
            .split('&')
            .find_map(|kv| kv.strip_prefix("name="))
            .unwrap_or("world");
        let text = format!(
            "Hello, {name}! (worker {}, request {} on this worker)\n",
            self.worker,
            self.served.get()
        );
        resp.write(text.as_bytes()).await?;
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::parse();
    engine::logging::init(&config.log_level, false);
    let server = Server::bind(config)?;
    signals::install(server.stop_handle())?;
    server.run(|worker| Greeter {
        worker,
        served: Cell::new(0),
    })?;
    Ok(())
}

//! FastCGI responses: records decoded with the engine's client codec, several requests by id,
//! each request's STDOUT read as a CGI response.

use std::rc::Rc;

use proto::{fcgi, scgi};

use super::{perr, BodyCheck, Done, ProtoError, MAX_HEAD};

/// FastCGI: one CGI reader per request id.
#[derive(Debug)]
pub struct FcgiReader {
    slots: Vec<Option<FcgiSlot>>,
    keepalive: bool,
    expect: Option<Rc<[u8]>>,
}

#[derive(Debug)]
struct FcgiSlot {
    cgi: scgi::ResponseReader,
    body: BodyCheck,
}

impl FcgiReader {
    pub(super) fn new(mux: usize, keepalive: bool, expect: Option<Rc<[u8]>>) -> Self {
        Self {
            slots: (0..mux).map(|_| None).collect(),
            keepalive,
            expect,
        }
    }

    /// Request `id` was sent: a fresh reader for its response (keeping the head buffer).
    pub(super) fn start(&mut self, id: u16) {
        let Some(slot) = usize::from(id)
            .checked_sub(1)
            .and_then(|i| self.slots.get_mut(i))
        else {
            return;
        };
        let mut cgi = match slot.take() {
            Some(old) => old.cgi,
            None => scgi::ResponseReader::new(MAX_HEAD),
        };
        cgi.reset();
        *slot = Some(FcgiSlot {
            cgi,
            body: BodyCheck::new(self.expect.clone()),
        });
    }

    pub(super) fn read(&mut self, buf: &[u8], done: &mut Vec<Done>) -> Result<usize, ProtoError> {
        let mut at = 0;
        loop {
            let rest = buf.get(at..).unwrap_or_default();
            let (record, used) = match fcgi::decode_response_record(rest).map_err(perr)? {
                fcgi::Decode::Complete(record, used) => (record, used),
                fcgi::Decode::Partial => return Ok(at),
            };
            at += used;
            match record {
                fcgi::ResponseRecord::Stdout { request_id, data } => {
                    let slot = self.slot(request_id)?;
                    let body = &mut slot.body;
                    slot.cgi.feed(data, |b| body.feed(b)).map_err(perr)?;
                }
                fcgi::ResponseRecord::EndRequest { request_id, end } => {
                    let slot = self.slot(request_id)?;
                    if end.protocol_status != fcgi::protocol_status::REQUEST_COMPLETE {
                        return Err(ProtoError(format!(
                            "END_REQUEST with protocol status {}",
                            end.protocol_status
                        )));
                    }
                    let finished = slot.cgi.finish().map_err(perr)?;
                    let body_ok = slot.body.finish();
                    if let Some(s) = self.slots.get_mut(usize::from(request_id) - 1) {
                        // Keep the reader's memory for the next request on this id.
                        if let Some(mut old) = s.take() {
                            old.cgi.reset();
                            *s = Some(old);
                        }
                    }
                    done.push(Done {
                        id: request_id,
                        status: finished.status,
                        body_ok,
                        reuse: self.keepalive,
                    });
                }
                _ => {}
            }
        }
    }

    fn slot(&mut self, id: u16) -> Result<&mut FcgiSlot, ProtoError> {
        usize::from(id)
            .checked_sub(1)
            .and_then(|i| self.slots.get_mut(i))
            .and_then(Option::as_mut)
            .ok_or_else(|| {
                ProtoError(format!(
                    "record for request id {id}, which is not in flight"
                ))
            })
    }
}

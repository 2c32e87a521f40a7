//! Which of the three protocols a listener, a connection or a metric is about.

/// The protocol a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// FastCGI.
    FastCgi,
    /// SCGI.
    Scgi,
    /// AJP13.
    Ajp,
}

impl Protocol {
    /// Every protocol, each at its own index (`protocol as usize`).
    pub const ALL: [Protocol; 3] = [Protocol::FastCgi, Protocol::Scgi, Protocol::Ajp];

    /// Lower-case name, for logs and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::FastCgi => "fastcgi",
            Protocol::Scgi => "scgi",
            Protocol::Ajp => "ajp",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Protocol;

    #[test]
    fn every_protocol_sits_at_its_own_index() {
        for (i, p) in Protocol::ALL.iter().enumerate() {
            assert_eq!(*p as usize, i, "{}", p.name());
        }
    }
}

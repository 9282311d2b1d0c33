//! The strict part of HTTP/1.x the monitor needs: the request head, up to the empty line

/// What the client asked for
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Request<'a> {
    /// The method
    pub(crate) method: Method,
    /// The target's path, without its query
    pub(crate) path: &'a str,
}

/// Methods the router tells apart
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Head,
    Options,
    /// Any other well-formed method
    Other,
}

/// Why a head is refused
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// 400: not an HTTP/1.x request head
    Malformed,
    /// 505: a well-formed request of another major version
    Version,
}

/// The length of the head in `buf`, empty line included, once it is complete
pub(crate) fn head_len(buf: &[u8]) -> Option<usize> {
    buf.iter().enumerate().find_map(|(i, &b)| {
        if b != b'\n' {
            return None;
        }
        match buf.get(i + 1..) {
            Some([b'\n', ..]) => Some(i + 2),
            Some([b'\r', b'\n', ..]) => Some(i + 3),
            _ => None,
        }
    })
}

/// Parses a complete head (as delimited by [`head_len`])
///
/// Lines end in CRLF or a bare LF (RFC 9112 §2.2). The request line must be exactly
/// `token SP origin-form SP HTTP/d.d` (`*` is also accepted for OPTIONS); header lines must be
/// `token ":" value` without folding; HTTP/1.1 needs a `Host` header (RFC 9112 §3.2).
pub(crate) fn parse(head: &[u8]) -> Result<Request<'_>, Refusal> {
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let line = lines.next().ok_or(Refusal::Malformed)?;
    let line = std::str::from_utf8(line).map_err(|_| Refusal::Malformed)?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refusal::Malformed);
    };
    if method.is_empty() || !method.bytes().all(is_tchar) {
        return Err(Refusal::Malformed);
    }
    let method = match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "OPTIONS" => Method::Options,
        _ => Method::Other,
    };
    let origin_form = target.starts_with('/');
    if !(origin_form || (target == "*" && method == Method::Options))
        || !target.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(Refusal::Malformed);
    }
    let minor = match version.as_bytes() {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            if *major != b'1' {
                return Err(Refusal::Version);
            }
            *minor
        }
        _ => return Err(Refusal::Malformed),
    };
    let mut host = false;
    for line in lines.take_while(|l| !l.is_empty()) {
        let colon = line.iter().position(|&b| b == b':');
        let Some(colon) = colon.filter(|&c| c > 0) else {
            return Err(Refusal::Malformed);
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        if !name.iter().copied().all(is_tchar)
            || value.iter().any(|&b| b.is_ascii_control() && b != b'\t')
        {
            return Err(Refusal::Malformed);
        }
        host |= name.eq_ignore_ascii_case(b"host");
    }
    if minor != b'0' && !host {
        return Err(Refusal::Malformed);
    }
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    Ok(Request { method, path })
}

/// A token character (RFC 9110 §5.6.2)
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> Result<Request<'_>, Refusal> {
        Ok(Request {
            method: Method::Get,
            path,
        })
    }

    #[test]
    fn finds_the_end_of_the_head() {
        assert_eq!(head_len(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nbody"), Some(27));
        assert_eq!(head_len(b"GET / HTTP/1.0\n\n"), Some(16));
        assert_eq!(head_len(b"GET / HTTP/1.1\r\nHost: a\r\n"), None);
        assert_eq!(head_len(b"GET / HTTP/1.1\r\n\r"), None);
    }

    #[test]
    fn accepts_well_formed_heads() {
        assert_eq!(parse(b"GET /dns HTTP/1.1\r\nHost: x\r\n\r\n"), get("/dns"));
        assert_eq!(parse(b"GET /?t=1 HTTP/1.0\n\n"), get("/"));
        let head = b"GET /metrics HTTP/1.1\r\nhost:x\r\nAccept: */*\r\nX-Y:\t\xff\r\n\r\n";
        assert_eq!(parse(head), get("/metrics"));
        let r = parse(b"HEAD / HTTP/1.0\r\n\r\n").map(|r| r.method);
        assert_eq!(r, Ok(Method::Head));
        let r = parse(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n").map(|r| r.method);
        assert_eq!(r, Ok(Method::Options));
        let r = parse(b"BREW / HTTP/1.0\r\n\r\n").map(|r| r.method);
        assert_eq!(r, Ok(Method::Other));
    }

    #[test]
    fn refuses_malformed_heads() {
        for head in [
            &b"\r\n\r\n"[..],
            b"GET\r\n\r\n",
            b"GET /\r\n\r\n",
            b"GET  / HTTP/1.0\r\n\r\n",
            b"GET / HTTP/1.0 x\r\n\r\n",
            b"G(T / HTTP/1.0\r\n\r\n",
            b"GET index HTTP/1.0\r\n\r\n",
            b"GET * HTTP/1.0\r\n\r\n",
            b"GET http://a/ HTTP/1.0\r\n\r\n",
            b"GET /\x01 HTTP/1.0\r\n\r\n",
            b"GET / HTTP/1\r\n\r\n",
            b"GET / http/1.1\r\nHost: x\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost x\r\n\r\n",
            b"GET / HTTP/1.1\r\n: x\r\nHost: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\x00\r\n\r\n",
            b"\xff\xfe / HTTP/1.0\r\n\r\n",
        ] {
            assert_eq!(parse(head), Err(Refusal::Malformed), "{head:?}");
        }
        assert_eq!(parse(b"GET / HTTP/2.0\r\n\r\n"), Err(Refusal::Version));
    }
}

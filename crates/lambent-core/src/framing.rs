//! Response headers that belong to the server, not to the function: they describe the connection
//! or how the body is framed on it (RFC 9110 section 7.6.1's hop-by-hop headers, plus
//! `Content-Length`). A function that could set them could make the server send a body that does
//! not match its framing (smuggling a second response into a keep-alive connection, or cutting its
//! own short), or close or upgrade the caller's connection. Every tier drops them from what a
//! function answers, as Lambda drops them, and the HTTP server frames the body itself.

/// The headers a function may not set on a response, lowercase. Any `proxy-*` header is dropped
/// too (see [`is_server_owned`]).
pub const SERVER_OWNED_RESPONSE_HEADERS: [&str; 7] = [
    "connection",
    "content-length",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Prefix of headers meant for proxies (`Proxy-Authenticate`, `Proxy-Connection`, ...), which a
/// function may not set either.
pub const PROXY_HEADER_PREFIX: &str = "proxy-";

/// Whether a function may not set the response header `name` (any case).
pub fn is_server_owned(name: &str) -> bool {
    SERVER_OWNED_RESPONSE_HEADERS
        .iter()
        .any(|h| h.eq_ignore_ascii_case(name))
        || name
            .get(..PROXY_HEADER_PREFIX.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(PROXY_HEADER_PREFIX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_and_hop_by_hop_headers_are_the_servers() {
        for name in [
            "Content-Length",
            "TRANSFER-ENCODING",
            "connection",
            "Keep-Alive",
            "Upgrade",
            "TE",
            "Trailer",
            "Proxy-Connection",
            "proxy-authenticate",
        ] {
            assert!(is_server_owned(name), "{name}");
        }
        for name in [
            "content-type",
            "x-length",
            "tea",
            "proxy",
            "set-cookie",
            "é",
        ] {
            assert!(!is_server_owned(name), "{name}");
        }
    }
}

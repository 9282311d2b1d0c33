//! `GET /dashboard`: one self-contained page (inline CSS and JS, canvas charts drawn by hand)
//! that polls `/api/snapshot` every second
//!
//! It shows each source (client) or client (server) with a live throughput chart in bits/s
//! computed from counter deltas over the snapshots' own clock, the tunnel's throughput, the
//! RTT, the NAT table (server), the names learned from DNS answers with their IPv4 and IPv6
//! addresses (client), the drops by reason and, with KCP, the session's counters; a red warning
//! above them while a peer's payloads cannot be opened (wrong password or method). Data from the
//! network (DNS names, addresses) only ever reaches the page through `textContent`.

/// The page
pub const PAGE: &str = include_str!("dashboard.html");

/// Header line sent with the page: it may load nothing from elsewhere, only poll this monitor
pub const CSP: &str = "Content-Security-Policy: default-src 'none'; script-src 'unsafe-inline'; \
     style-src 'unsafe-inline'; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'\r\n";

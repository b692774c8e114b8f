//! The load phase's HTTP/1.1 client, lean because on a small machine every
//! microsecond the generator spends is taken from the gateway it measures.
//! Requests are rendered to their final bytes beforehand ([`render`]), so
//! sending is one write; the answer is framed by hand (Content-Length,
//! chunked, or until the connection closes) and only its status is kept.
//! Connections are kept alive in a small pool: one request at a time each,
//! back to the pool once the answer is read whole, dropped on any error.
//! Setup and the ops API stay on reqwest: they are not hot.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use httparse::Status;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::wire::Delivery;

/// Most header fields an answer may carry; actix sends a handful.
const MAX_HEADERS: usize = 32;
/// Room made in a connection's buffer before each read.
const READ_CHUNK: usize = 4096;
/// An idle connection older than this is closed, not reused: actix-web
/// closes one after 5 s idle, and a request written as it does so is lost
/// with the connection (the probe in `reuse` cannot see a close that has
/// not happened yet).
const MAX_IDLE: Duration = Duration::from_secs(2);

/// Where the load goes, from `--target`.
#[derive(Debug, Clone)]
pub struct Target {
    addrs: Vec<SocketAddr>,
    /// `host[:port]`, as the `Host` header and error messages name it.
    authority: String,
    /// The path of `--target`, which every request's path extends.
    prefix: String,
}

impl Target {
    /// `base_url` resolved once, before the load: plain `http://` only,
    /// since the gateway serves no TLS (a TLS proxy in front of it would
    /// measure the proxy).
    pub fn resolve(base_url: &str) -> Result<Self, String> {
        let url = reqwest::Url::parse(base_url).map_err(|e| format!("--target {base_url}: {e}"))?;
        if url.scheme() != "http" {
            return Err(format!(
                "--target {base_url}: the load is sent over plain http:// only"
            ));
        }
        let host = url
            .host_str()
            .ok_or_else(|| format!("--target {base_url} names no host"))?;
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        let addrs = url
            .socket_addrs(|| None)
            .map_err(|e| format!("--target {base_url}: {e}"))?;
        Ok(Self {
            addrs,
            authority,
            prefix: url.path().trim_end_matches('/').to_owned(),
        })
    }
}

/// Appends `delivery` to `buffer` as the bytes of a whole POST to `target`:
/// the headers reqwest sent (its names in lower case), `Host` and
/// `Content-Length`, then the body. Its parts are safe to write raw: paths
/// and header values hold no control characters (see `Wire::new`).
pub fn render(target: &Target, delivery: &Delivery, buffer: &mut BytesMut) {
    let fields: usize = delivery
        .headers
        .iter()
        .map(|(name, value)| name.len() + value.len() + 4)
        .sum();
    buffer.reserve(fields + delivery.body.len() + 128);
    let mut text = |parts: &[&str]| parts.iter().for_each(|p| buffer.put_slice(p.as_bytes()));
    text(&["POST ", &target.prefix, &delivery.path, " HTTP/1.1\r\n"]);
    for (name, value) in &delivery.headers {
        text(&[&name.to_ascii_lowercase(), ": ", value, "\r\n"]);
    }
    text(&["accept: */*\r\nhost: ", &target.authority, "\r\n"]);
    text(&[
        "content-length: ",
        &delivery.body.len().to_string(),
        "\r\n\r\n",
    ]);
    buffer.put_slice(&delivery.body);
}

/// Why a request got no answer, by the kinds the report counts.
#[derive(Debug)]
pub enum Failure {
    /// No whole answer within `--timeout`, connecting included.
    Timeout,
    Connect(io::Error),
    /// Writing the request or reading the answer.
    Io(io::Error),
    /// The connection closed before the answer's last byte.
    Closed,
    /// Not an HTTP/1.1 answer this client can frame.
    Malformed(String),
}

impl Failure {
    /// The report's name for this kind of failure.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Connect(_) => "connect",
            Self::Io(_) | Self::Closed | Self::Malformed(_) => "other",
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout => f.write_str("no whole answer within the timeout"),
            Self::Connect(_) => f.write_str("connecting"),
            Self::Io(_) => f.write_str("sending or reading"),
            Self::Closed => f.write_str("the connection closed before the answer's end"),
            Self::Malformed(what) => write!(f, "a malformed answer: {what}"),
        }
    }
}

impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Connect(e) | Self::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// A kept-alive connection and its read buffer, reused with it.
struct Connection {
    stream: TcpStream,
    buffer: Vec<u8>,
    /// When it went back to the pool.
    idle_since: Instant,
}

impl Connection {
    /// Reads one answer whole.
    async fn answer(&mut self) -> Result<Answer, Failure> {
        self.buffer.clear();
        loop {
            self.buffer.reserve(READ_CHUNK);
            let read = self
                .stream
                .read_buf(&mut self.buffer)
                .await
                .map_err(Failure::Io)?;
            if let Some(answer) = frame(&self.buffer, read == 0)? {
                return Ok(answer);
            }
        }
    }
}

/// Sends rendered requests to one target over kept-alive connections.
pub struct Client {
    target: Target,
    timeout: Duration,
    /// Connections between two requests; the last one back goes first,
    /// so a steady load reuses a few hot ones.
    idle: Mutex<Vec<Connection>>,
    max_idle: Duration,
}

impl Client {
    pub fn new(target: Target, timeout: Duration) -> Self {
        Self {
            target,
            timeout,
            idle: Mutex::new(Vec::new()),
            max_idle: MAX_IDLE,
        }
    }

    /// This client with another idle limit than [`MAX_IDLE`].
    #[cfg(test)]
    fn with_max_idle(self, max_idle: Duration) -> Self {
        Self { max_idle, ..self }
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Sends a rendered request and reads its answer whole; the answer's
    /// status once its last byte is in.
    pub async fn send(&self, request: &[u8]) -> Result<u16, Failure> {
        tokio::time::timeout(self.timeout, self.exchange(request))
            .await
            .unwrap_or(Err(Failure::Timeout))
    }

    async fn exchange(&self, request: &[u8]) -> Result<u16, Failure> {
        let mut connection = match self.reuse() {
            Some(connection) => connection,
            None => self.connect().await?,
        };
        connection
            .stream
            .write_all(request)
            .await
            .map_err(Failure::Io)?;
        let answer = connection.answer().await?;
        if answer.reusable {
            connection.idle_since = Instant::now();
            self.idle().push(connection);
        }
        Ok(answer.status)
    }

    /// An idle connection the gateway has not closed meanwhile (its
    /// keep-alive ran out, or it restarted): one that has nothing to read,
    /// and not so old that the gateway may be closing it right now.
    /// The probe costs no syscall when the reactor saw nothing arrive.
    fn reuse(&self) -> Option<Connection> {
        loop {
            let connection = self.idle().pop()?;
            if connection.idle_since.elapsed() > self.max_idle {
                continue;
            }
            match connection.stream.try_read(&mut [0; 1]) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Some(connection),
                // Closed, failed, or talking out of turn: not to be reused.
                _ => continue,
            }
        }
    }

    async fn connect(&self) -> Result<Connection, Failure> {
        let stream = TcpStream::connect(&self.target.addrs[..])
            .await
            .map_err(Failure::Connect)?;
        // One write per request: nothing to gain from waiting for more.
        stream.set_nodelay(true).map_err(Failure::Connect)?;
        Ok(Connection {
            stream,
            buffer: Vec::with_capacity(READ_CHUNK),
            idle_since: Instant::now(),
        })
    }

    /// The pool; a sender that panicked holding it left a list of
    /// connections, each whole.
    fn idle(&self) -> MutexGuard<'_, Vec<Connection>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `POST http://host/path` of a rendered request, to name it in an error.
    pub fn describe(&self, request: &[u8]) -> String {
        let line = request.split(|b| *b == b'\r').next().unwrap_or_default();
        let line = String::from_utf8_lossy(line);
        match line.split(' ').collect::<Vec<_>>()[..] {
            [method, path, ..] => format!("{method} http://{}{path}", self.target.authority),
            _ => line.into_owned(),
        }
    }
}

/// A whole answer.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    status: u16,
    /// Framed, with nothing after it, and the server keeps the connection.
    reusable: bool,
}

/// The answer `buffer` holds, `None` while it needs more bytes; `eof`
/// when the connection has closed after them.
fn frame(buffer: &[u8], eof: bool) -> Result<Option<Answer>, Failure> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let head = match response.parse(buffer) {
        Ok(Status::Complete(head)) => head,
        Ok(Status::Partial) => return more(eof),
        Err(e) => return Err(Failure::Malformed(e.to_string())),
    };
    // A complete head always has its status.
    let status = response.code.unwrap_or_default();
    let body = &buffer[head..];
    if (100..200).contains(&status) {
        // An interim answer: the real one follows.
        return frame(body, eof);
    }
    let (mut close, mut keep_alive, mut coded, mut chunked, mut length) =
        (false, false, false, false, None);
    for header in response.headers.iter() {
        let tokens = || header.value.split(|b| *b == b',').map(<[u8]>::trim_ascii);
        if header.name.eq_ignore_ascii_case("connection") {
            close |= tokens().any(|t| t.eq_ignore_ascii_case(b"close"));
            keep_alive |= tokens().any(|t| t.eq_ignore_ascii_case(b"keep-alive"));
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            // Chunked only counts as the last coding.
            coded = true;
            chunked = tokens()
                .next_back()
                .is_some_and(|t| t.eq_ignore_ascii_case(b"chunked"));
        } else if header.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(header.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .filter(|n| length.is_none_or(|l| l == *n))
                .ok_or_else(|| Failure::Malformed("its Content-Length".into()))?;
            length = Some(n);
        }
    }
    // HTTP/1.0 closes unless asked to keep alive.
    close |= response.version == Some(0) && !keep_alive;
    let end = if status == 204 || status == 304 {
        Some(0)
    } else if coded {
        if chunked {
            chunked_end(body)?
        } else {
            return until_close(status, eof);
        }
    } else if let Some(n) = length {
        (body.len() >= n).then_some(n)
    } else {
        return until_close(status, eof);
    };
    match end {
        Some(end) => Ok(Some(Answer {
            status,
            reusable: !close && body.len() == end,
        })),
        None => more(eof),
    }
}

/// Wants more bytes, which a closed connection will not bring.
fn more(eof: bool) -> Result<Option<Answer>, Failure> {
    if eof {
        Err(Failure::Closed)
    } else {
        Ok(None)
    }
}

/// A body without length ends when the connection does.
fn until_close(status: u16, eof: bool) -> Result<Option<Answer>, Failure> {
    Ok(eof.then_some(Answer {
        status,
        reusable: false,
    }))
}

/// Where a chunked body ends (after its last chunk and trailer fields),
/// `None` while it is incomplete.
fn chunked_end(body: &[u8]) -> Result<Option<usize>, Failure> {
    let mut at = 0;
    loop {
        let (used, size) = match httparse::parse_chunk_size(&body[at..]) {
            Ok(Status::Complete(parsed)) => parsed,
            Ok(Status::Partial) => return Ok(None),
            Err(_) => return Err(Failure::Malformed("a chunk size".into())),
        };
        at += used;
        if size == 0 {
            // Trailer fields, each a line, up to an empty line.
            loop {
                let Some(line) = body[at..].windows(2).position(|w| w == b"\r\n") else {
                    return Ok(None);
                };
                at += line + 2;
                if line == 0 {
                    return Ok(Some(at));
                }
            }
        }
        let end = usize::try_from(size)
            .ok()
            .and_then(|size| at.checked_add(size)?.checked_add(2))
            .ok_or_else(|| Failure::Malformed("a chunk size".into()))?;
        match body.get(end - 2..end) {
            None => return Ok(None),
            Some(b"\r\n") => at = end,
            Some(_) => return Err(Failure::Malformed("a chunk's end".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use tokio::net::TcpListener;

    use super::*;

    /// Frames `answer` fed a byte at a time: incomplete on every proper
    /// prefix, the result at the end.
    fn framed(answer: &[u8], eof: bool) -> Result<Option<Answer>, Failure> {
        for cut in 0..answer.len() {
            assert!(
                matches!(frame(&answer[..cut], false), Ok(None)),
                "complete after {cut} bytes of {:?}",
                String::from_utf8_lossy(answer)
            );
        }
        frame(answer, eof)
    }

    fn answer(status: u16, reusable: bool) -> Option<Answer> {
        Some(Answer { status, reusable })
    }

    #[test]
    fn a_content_length_body_ends_after_its_length() {
        let ok = b"HTTP/1.1 202 Accepted\r\ncontent-length: 5\r\n\r\nhello";
        assert_eq!(framed(ok, false).unwrap(), answer(202, true));
        let closing =
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno";
        assert_eq!(framed(closing, false).unwrap(), answer(400, false));
        let old = b"HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(framed(old, false).unwrap(), answer(200, false));
        let old_kept = b"HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(framed(old_kept, false).unwrap(), answer(200, true));
        // Bytes nobody asked for: the connection is not to be trusted.
        let extra = b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nab";
        assert_eq!(frame(extra, false).unwrap(), answer(200, false));
        let two = b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nab";
        assert!(matches!(frame(two, false), Err(Failure::Malformed(_))));
    }

    #[test]
    fn a_chunked_body_ends_after_its_last_chunk_and_trailers() {
        let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
                        5\r\nhello\r\na;ext=1\r\n0123456789\r\n0\r\n\r\n";
        assert_eq!(framed(chunked, false).unwrap(), answer(200, true));
        let trailers = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
                         0\r\nx-trailer: 1\r\n\r\n";
        assert_eq!(framed(trailers, false).unwrap(), answer(200, true));
        let bad_size = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n";
        assert!(matches!(frame(bad_size, false), Err(Failure::Malformed(_))));
        let bad_end = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\r\nab\r\n";
        assert!(matches!(frame(bad_end, false), Err(Failure::Malformed(_))));
    }

    #[test]
    fn a_body_without_length_ends_with_the_connection() {
        let open = b"HTTP/1.1 200 OK\r\n\r\nsome";
        assert_eq!(frame(open, false).unwrap(), None);
        assert_eq!(frame(open, true).unwrap(), answer(200, false));
        let no_body = b"HTTP/1.1 204 No Content\r\n\r\n";
        assert_eq!(framed(no_body, false).unwrap(), answer(204, true));
        let interim =
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(framed(interim, false).unwrap(), answer(201, true));
        let cut = b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nhalf";
        assert!(matches!(frame(cut, true), Err(Failure::Closed)));
        assert!(matches!(frame(b"", true), Err(Failure::Closed)));
        assert!(matches!(
            frame(b"SMTP ready\r\n\r\n", false),
            Err(Failure::Malformed(_))
        ));
    }

    fn delivery() -> Delivery {
        Delivery {
            path: "/webhooks/shopify".into(),
            headers: vec![
                ("Content-Type", "application/json".into()),
                ("X-Shopify-Event-Id", "e-1".into()),
            ],
            body: br#"{"id":1}"#.to_vec(),
        }
    }

    #[test]
    fn a_rendered_request_is_the_post_with_its_headers_and_body() {
        let target = Target::resolve("http://127.0.0.1:8091/prefix").unwrap();
        let mut buffer = BytesMut::new();
        render(&target, &delivery(), &mut buffer);
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut request = httparse::Request::new(&mut headers);
        let head = match request.parse(&buffer).unwrap() {
            Status::Complete(head) => head,
            Status::Partial => panic!("a partial head"),
        };
        assert_eq!(request.method, Some("POST"));
        assert_eq!(request.path, Some("/prefix/webhooks/shopify"));
        let fields: Vec<(&str, &[u8])> =
            request.headers.iter().map(|h| (h.name, h.value)).collect();
        assert_eq!(
            fields,
            [
                ("content-type", &b"application/json"[..]),
                ("x-shopify-event-id", b"e-1"),
                ("accept", b"*/*"),
                ("host", b"127.0.0.1:8091"),
                ("content-length", b"8"),
            ]
        );
        assert_eq!(&buffer[head..], br#"{"id":1}"#);
        assert!(Target::resolve("https://127.0.0.1:8091").is_err());
    }

    /// A server answering each request with the next of `answers` (the
    /// last one over and over), closing the connection shortly after
    /// those whose flag says so; how many connections it accepted.
    async fn server(answers: Vec<(&'static [u8], bool)>) -> (Target, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target =
            Target::resolve(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        let answers = Arc::new(answers);
        tokio::spawn(async move {
            let mut served = 0;
            while let Ok((mut stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let mut buffer = Vec::new();
                loop {
                    let mut headers = [httparse::EMPTY_HEADER; 16];
                    let parsed = httparse::Request::new(&mut headers).parse(&buffer).unwrap();
                    if let Status::Complete(head) = parsed {
                        // The test requests' bodies are 8 bytes.
                        if buffer.len() >= head + 8 {
                            buffer.drain(..head + 8);
                            let (answer, close) = answers[served.min(answers.len() - 1)];
                            served += 1;
                            stream.write_all(answer).await.unwrap();
                            if close {
                                // A little late, as a server may be: the
                                // client must not count on seeing it.
                                tokio::time::sleep(Duration::from_millis(50)).await;
                                break;
                            }
                            continue;
                        }
                    }
                    if stream.read_buf(&mut buffer).await.unwrap_or(0) == 0 {
                        break;
                    }
                }
            }
        });
        (target, accepted)
    }

    fn request(target: &Target) -> BytesMut {
        let mut buffer = BytesMut::new();
        render(target, &delivery(), &mut buffer);
        buffer
    }

    #[tokio::test]
    async fn connections_are_kept_alive_until_the_server_closes_them() {
        let ok: &[u8] = b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\nok";
        let closing: &[u8] =
            b"HTTP/1.1 202 Accepted\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok";
        let chunked: &[u8] =
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n";
        let (target, accepted) = server(vec![
            (ok, false),
            (chunked, false),
            (closing, true),
            // Closed without a word, as a keep-alive timeout does.
            (ok, true),
            (ok, false),
        ])
        .await;
        let client = Client::new(target.clone(), Duration::from_secs(5));
        let request = request(&target);
        // Right after `connection: close` the connection still looks
        // open: only the header keeps it from being reused.
        let steps = [
            (202, 1, false),
            (200, 1, false),
            (202, 1, false),
            (202, 2, true),
            (202, 3, false),
        ];
        for (status, connections, wait) in steps {
            assert_eq!(client.send(&request).await.unwrap(), status);
            assert_eq!(accepted.load(Ordering::SeqCst), connections);
            if wait {
                // Time for the silent close to reach the client.
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
        }
    }

    #[tokio::test]
    async fn a_connection_idle_too_long_is_not_reused() {
        let ok: &[u8] = b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\nok";
        let (target, accepted) = server(vec![(ok, false)]).await;
        let client = Client::new(target.clone(), Duration::from_secs(5))
            .with_max_idle(Duration::from_millis(100));
        let request = request(&target);
        assert_eq!(client.send(&request).await.unwrap(), 202);
        assert_eq!(client.send(&request).await.unwrap(), 202);
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "reused while fresh");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(client.send(&request).await.unwrap(), 202);
        assert_eq!(accepted.load(Ordering::SeqCst), 2, "a new one once stale");
    }

    #[tokio::test]
    async fn failures_are_told_apart_by_kind() {
        let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = Target::resolve(&format!("http://{}", silent.local_addr().unwrap())).unwrap();
        let client = Client::new(target.clone(), Duration::from_millis(100));
        let failure = client.send(&request(&target)).await.unwrap_err();
        assert_eq!(failure.kind(), "timeout");
        drop(silent);
        let failure = client.send(&request(&target)).await.unwrap_err();
        assert_eq!(failure.kind(), "connect", "{failure}");
        assert_eq!(
            client.describe(&request(&target)),
            format!("POST http://{}/webhooks/shopify", target.authority)
        );
        let (target, _) = server(vec![(
            b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nhalf",
            true,
        )])
        .await;
        let client = Client::new(target.clone(), Duration::from_secs(5));
        let failure = client.send(&request(&target)).await.unwrap_err();
        assert!(matches!(failure, Failure::Closed), "{failure}");
        assert_eq!(failure.kind(), "other");
    }
}

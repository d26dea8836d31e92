//! Bodies a request's handler left unread, read away before the answer goes out.
//!
//! A server that answers early (a 401 before the body is read, a 413 for a body over the
//! limit) and closes the connection while the client is still sending makes the client's
//! kernel see a reset: the client then reports "broken pipe" or "connection reset" instead of
//! the answer. Web servers avoid it with a lingering close; here the rest of the body is read
//! and thrown away first, bounded in bytes and time. A client that waits for `100 Continue`
//! has sent nothing yet and needs no such care, and a body beyond [`DRAIN_MAX_BYTES`] is not
//! worth reading: those connections are closed (`Connection: close`).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::header::{CONNECTION, EXPECT};
use axum::http::HeaderValue;
use axum::response::Response;
use futures::StreamExt;
use hyper::body::{Frame, SizeHint};
use tokio::sync::oneshot;

/// The most of a body read and thrown away so that its sender sees the answer.
pub const DRAIN_MAX_BYTES: u64 = 16 * 1024 * 1024;
/// How long reading a body away may take.
const DRAIN_TIME: Duration = Duration::from_secs(10);

/// A request's body as its handler sees it; what the handler leaves unread comes back to
/// [`Leftover`] when the handler drops it.
struct Tracked {
    inner: Option<Body>,
    leftover: Option<oneshot::Sender<Body>>,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        match self.inner.as_mut() {
            Some(inner) => Pin::new(inner).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if let (Some(inner), Some(leftover)) = (self.inner.take(), self.leftover.take()) {
            if !inner.is_end_stream() {
                // The receiver may be gone (the request was answered): then so is the body.
                let _ = leftover.send(inner);
            }
        }
    }
}

/// The part of a request's body its handler did not read, once the handler is done.
pub struct Leftover {
    receiver: oneshot::Receiver<Body>,
    waits_for_continue: bool,
    declared: Option<u64>,
}

/// Hands the request on with a body that reports what was left unread.
pub fn track(request: Request) -> (Request, Leftover) {
    let (sender, receiver) = oneshot::channel();
    let leftover = Leftover {
        receiver,
        waits_for_continue: request.headers().contains_key(EXPECT),
        declared: request.body().size_hint().exact(),
    };
    let request = request.map(|body| {
        Body::new(Tracked {
            inner: Some(body),
            leftover: Some(sender),
        })
    });
    (request, leftover)
}

impl Leftover {
    /// Reads away what the handler left of the body, unless that is not worth it; then the
    /// answer closes the connection.
    pub async fn settle(mut self, mut response: Response) -> Response {
        let Ok(body) = self.receiver.try_recv() else {
            return response;
        };
        let worth_it =
            !self.waits_for_continue && self.declared.is_none_or(|n| n <= DRAIN_MAX_BYTES);
        if !(worth_it && drain(body).await) {
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// Reads a body away, within [`DRAIN_MAX_BYTES`] and [`DRAIN_TIME`]; whether it got to its
/// end.
async fn drain(body: Body) -> bool {
    let reading = async {
        let mut stream = body.into_data_stream();
        let mut read: u64 = 0;
        while let Some(frame) = stream.next().await {
            match frame {
                Ok(bytes) => read += bytes.len() as u64,
                Err(_) => return false,
            }
            if read > DRAIN_MAX_BYTES {
                return false;
            }
        }
        true
    };
    tokio::time::timeout(DRAIN_TIME, reading)
        .await
        .unwrap_or(false)
}

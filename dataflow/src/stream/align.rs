//! Barrier alignment: several inputs become one stream in which every barrier appears once,
//! after every input has delivered it.

use futures::FutureExt;
use futures::future::BoxFuture;
use futures::stream::{self, BoxStream, FuturesUnordered, StreamExt, TryStreamExt};

use super::{Barrier, Message, MessageStream, Receiver, Watermark, WatermarkMin};
use crate::chunk::StreamChunk;
use crate::{Error, Result};

/// A message of an aligned stream.
pub(crate) enum Aligned {
    /// A chunk from input `.0`.
    Chunk(usize, StreamChunk),
    /// A barrier every input has delivered.
    Barrier(Barrier),
    /// A watermark from input `.0`.
    Watermark(usize, Watermark),
}

type Pending = BoxFuture<'static, (usize, Option<Result<Message>>, MessageStream)>;

fn next_of(i: usize, mut input: MessageStream) -> Pending {
    async move {
        let message = input.next().await;
        (i, message, input)
    }
    .boxed()
}

/// Interleaves `inputs`' chunks as they come; an input that delivered a barrier is not read
/// again until every input has delivered it. Ends when any input ends (its upstream stopped).
pub(crate) fn align(inputs: Vec<MessageStream>) -> BoxStream<'static, Result<Aligned>> {
    Box::pin(async_stream::try_stream! {
        let n = inputs.len();
        let mut pending: FuturesUnordered<Pending> =
            inputs.into_iter().enumerate().map(|(i, s)| next_of(i, s)).collect();
        let mut blocked = Vec::with_capacity(n);
        let mut barrier: Option<Barrier> = None;
        while let Some((i, message, input)) = pending.next().await {
            match message {
                None => break,
                Some(Err(e)) => Err(e)?,
                Some(Ok(Message::Chunk(chunk))) => {
                    pending.push(next_of(i, input));
                    yield Aligned::Chunk(i, chunk);
                }
                Some(Ok(Message::Watermark(w))) => {
                    pending.push(next_of(i, input));
                    yield Aligned::Watermark(i, w);
                }
                Some(Ok(Message::Barrier(b))) => {
                    if let Some(first) = &barrier
                        && first.epoch != b.epoch
                    {
                        Err(Error::Internal(format!(
                            "misaligned barriers: {:?} and {:?}",
                            first.epoch, b.epoch
                        )))?;
                    }
                    barrier.get_or_insert(b);
                    blocked.push((i, input));
                    if blocked.len() == n {
                        for (i, input) in blocked.drain(..) {
                            pending.push(next_of(i, input));
                        }
                        yield Aligned::Barrier(barrier.take().expect("set above"));
                    }
                }
            }
        }
    })
}

/// The messages of a channel, as a stream.
pub(crate) fn receiver_stream(rx: Receiver) -> MessageStream {
    Box::pin(stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|m| (Ok(m), rx))
    }))
}

/// One input merged from several upstream actors' channels, barriers aligned.
pub(crate) fn merge(receivers: Vec<Receiver>) -> MessageStream {
    if receivers.len() == 1 {
        return receiver_stream(receivers.into_iter().next().expect("one"));
    }
    union(receivers.into_iter().map(receiver_stream).collect())
}

/// The rows of all `inputs` (of one schema), barriers aligned; a column's watermark is the
/// least of the inputs' once every input has one.
pub(crate) fn union(inputs: Vec<MessageStream>) -> MessageStream {
    let mut watermarks = WatermarkMin::new(inputs.len());
    Box::pin(align(inputs).try_filter_map(move |m| {
        futures::future::ready(Ok(match m {
            Aligned::Chunk(_, c) => Some(Message::Chunk(c)),
            Aligned::Barrier(b) => Some(Message::Barrier(b)),
            Aligned::Watermark(i, w) => watermarks.update(i, w).map(Message::Watermark),
        }))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::channel;
    use crate::stream::testing::barrier;

    fn chunk(v: i64) -> Message {
        Message::Chunk(StreamChunk::from_pretty(&format!(" I\n + {v}")))
    }

    #[tokio::test]
    async fn a_barrier_waits_for_every_input() {
        let (tx1, rx1) = channel();
        let (tx2, rx2) = channel();
        tx1.send(chunk(1)).await.unwrap();
        tx1.send(barrier(1)).await.unwrap();
        tx1.send(chunk(2)).await.unwrap();
        tx2.send(chunk(3)).await.unwrap();
        let mut merged = merge(vec![rx1, rx2]);
        let mut seen = Vec::new();
        for _ in 0..2 {
            match merged.next().await.unwrap().unwrap() {
                Message::Chunk(c) => seen.push(c.row(0)[0].clone()),
                other => panic!("{other:?} before input 2 delivered the barrier"),
            }
        }
        seen.sort_by_key(|d| format!("{d:?}"));
        assert_eq!(seen.len(), 2);
        // Input 1's chunk after its barrier must not overtake the barrier.
        assert!(merged.next().now_or_never().is_none());
        tx2.send(barrier(1)).await.unwrap();
        assert!(matches!(merged.next().await, Some(Ok(Message::Barrier(_)))));
        assert!(matches!(merged.next().await, Some(Ok(Message::Chunk(_)))));
        drop(tx1);
        drop(tx2);
        assert!(merged.next().await.is_none());
    }

    #[tokio::test]
    async fn a_merged_watermark_is_the_least_of_the_inputs() {
        let watermark = |v: i64| {
            Message::Watermark(Watermark {
                column: 0,
                value: crate::types::Datum::Int64(v),
            })
        };
        let (tx1, rx1) = channel();
        let (tx2, rx2) = channel();
        let mut merged = merge(vec![rx1, rx2]);
        tx1.send(watermark(5)).await.unwrap();
        assert!(
            merged.next().now_or_never().is_none(),
            "input 2 has none yet"
        );
        tx2.send(watermark(3)).await.unwrap();
        let least = |m: Option<Result<Message>>| match m {
            Some(Ok(Message::Watermark(w))) => w.value,
            other => panic!("{other:?}"),
        };
        assert_eq!(least(merged.next().await), crate::types::Datum::Int64(3));
        tx2.send(watermark(9)).await.unwrap();
        assert_eq!(least(merged.next().await), crate::types::Datum::Int64(5));
        tx1.send(watermark(4)).await.unwrap();
        assert!(
            merged.next().now_or_never().is_none(),
            "a watermark never goes back"
        );
    }
}

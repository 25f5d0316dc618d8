//! Hash exchange: an actor's output routed to the downstream actor owning each row's vnode.

use arrow::array::BooleanArray;
use epoch_mvcc::memcomparable::OrderType;
use epoch_mvcc::vnode_for;

use super::{Message, Sender};
use crate::Result;
use crate::chunk::StreamChunk;
use crate::row_codec::encode_keys;

/// Routes chunks by the vnode of `keys` (all to one output when there is one) and broadcasts
/// barriers and watermarks.
pub(crate) struct HashDispatcher {
    keys: Vec<usize>,
    outputs: Vec<Sender>,
}

impl HashDispatcher {
    pub(crate) fn new(keys: Vec<usize>, outputs: Vec<Sender>) -> Self {
        HashDispatcher { keys, outputs }
    }

    /// The output of each row: the owner of its vnode.
    fn targets(&self, chunk: &StreamChunk) -> Vec<usize> {
        let n = self.outputs.len();
        let orders = vec![OrderType::ASC; self.keys.len()];
        encode_keys(chunk.data(), &self.keys, &orders)
            .iter()
            .map(|k| usize::from(vnode_for(k)) % n)
            .collect()
    }

    /// Sends `message` on. A closed output means its actor stopped; the coordinator learns
    /// why from that actor, so the message is dropped for it.
    pub(crate) async fn dispatch(&mut self, message: Message) -> Result<()> {
        match message {
            Message::Chunk(chunk) if self.outputs.len() > 1 => {
                let targets = self.targets(&chunk);
                for (o, output) in self.outputs.iter().enumerate() {
                    let mask: BooleanArray = targets.iter().map(|t| Some(*t == o)).collect();
                    if mask.true_count() == 0 {
                        continue;
                    }
                    let part = chunk.filter(&mask)?;
                    let _ = output.send(Message::Chunk(part)).await;
                }
            }
            Message::Chunk(chunk) => {
                if let Some(output) = self.outputs.first() {
                    let _ = output.send(Message::Chunk(chunk)).await;
                }
            }
            broadcast @ (Message::Barrier(_) | Message::Watermark(_)) => {
                for output in &self.outputs {
                    let _ = output.send(broadcast.clone()).await;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::channel;
    use crate::types::Datum;

    #[tokio::test]
    async fn equal_keys_go_to_the_same_output() {
        let (tx1, mut rx1) = channel();
        let (tx2, mut rx2) = channel();
        let mut d = HashDispatcher::new(vec![0], vec![tx1, tx2]);
        let rows: String = (0..64).map(|i| format!("+ {} {i}\n", i % 8)).collect();
        d.dispatch(Message::Chunk(StreamChunk::from_pretty(&format!(
            " I I\n{rows}"
        ))))
        .await
        .unwrap();
        drop(d);
        let mut keys = [Vec::new(), Vec::new()];
        for (o, rx) in [&mut rx1, &mut rx2].into_iter().enumerate() {
            while let Some(Message::Chunk(c)) = rx.recv().await {
                for r in 0..c.cardinality() {
                    keys[o].push(c.row(r)[0].clone());
                }
            }
        }
        assert_eq!(keys[0].len() + keys[1].len(), 64);
        for k in &keys[0] {
            assert!(!keys[1].contains(k), "{k:?} went to both outputs");
        }
        assert!(
            keys.iter()
                .all(|k| k.iter().all(|d| matches!(d, Datum::Int64(_))))
        );
    }
}

//! One read's frames, bounded in count and in bytes.
//!
//! `ready_chunks` alone bounds a chunk by count: with 1 MiB frames, 512 of them would be half a
//! gigabyte held before the queue budget is even asked. Here a chunk also ends once its frames
//! reach `max_bytes`, so what a connection holds before it waits for room is bounded in bytes.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::stream::{Fuse, Stream, StreamExt};

use crate::jip3::FrameError;

pub struct ReadChunks<S> {
    frames: Fuse<S>,
    max_frames: usize,
    max_bytes: usize,
}

impl<S: Stream<Item = Result<Bytes, FrameError>> + Unpin> ReadChunks<S> {
    pub fn new(frames: S, max_frames: usize, max_bytes: usize) -> Self {
        ReadChunks {
            frames: frames.fuse(),
            max_frames: max_frames.max(1),
            max_bytes,
        }
    }
}

impl<S: Stream<Item = Result<Bytes, FrameError>> + Unpin> Stream for ReadChunks<S> {
    type Item = Vec<Result<Bytes, FrameError>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut chunk = Vec::new();
        let mut bytes = 0;
        loop {
            match Pin::new(&mut self.frames).poll_next(cx) {
                Poll::Ready(Some(frame)) => {
                    bytes += frame.as_ref().map_or(0, Bytes::len);
                    chunk.push(frame);
                    if chunk.len() >= self.max_frames || bytes >= self.max_bytes {
                        return Poll::Ready(Some(chunk));
                    }
                }
                Poll::Ready(None) if chunk.is_empty() => return Poll::Ready(None),
                Poll::Pending if chunk.is_empty() => return Poll::Pending,
                Poll::Ready(None) | Poll::Pending => return Poll::Ready(Some(chunk)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(chunks: Vec<Vec<Result<Bytes, FrameError>>>) -> Vec<Vec<usize>> {
        chunks
            .into_iter()
            .map(|c| c.into_iter().map(|f| f.unwrap().len()).collect())
            .collect()
    }

    #[tokio::test]
    async fn a_chunk_ends_at_its_frame_count_or_its_bytes() {
        let frames =
            [10, 10, 10, 50, 1, 1, 1, 1, 1].map(|n| Ok::<_, FrameError>(Bytes::from(vec![0u8; n])));
        let chunks: Vec<_> = ReadChunks::new(futures_util::stream::iter(frames), 4, 25)
            .collect()
            .await;
        assert_eq!(
            sizes(chunks),
            vec![vec![10, 10, 10], vec![50], vec![1, 1, 1, 1], vec![1]]
        );
    }
}

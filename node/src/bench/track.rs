//! Delivery accounting of one receiver: per sender it heard from, which counters arrived
//! (a growable bitmap), duplicates and out-of-order arrivals; per room, the seq order. Loss is
//! decided at the end, against the counters each sender had acknowledged.

/// A growable set of counters.
#[derive(Debug, Default, Clone)]
pub(crate) struct Bitmap {
    words: Vec<u64>,
}

impl Bitmap {
    /// Sets `i`; returns true when it was not set before.
    pub(crate) fn insert(&mut self, i: u64) -> bool {
        let (w, b) = ((i / 64) as usize, i % 64);
        if w >= self.words.len() {
            self.words.resize(w + 1, 0);
        }
        let was = self.words[w] & (1 << b) != 0;
        self.words[w] |= 1 << b;
        !was
    }

    pub(crate) fn contains(&self, i: u64) -> bool {
        let (w, b) = ((i / 64) as usize, i % 64);
        self.words.get(w).is_some_and(|x| x & (1 << b) != 0)
    }

    pub(crate) fn len(&self) -> u64 {
        self.words.iter().map(|w| w.count_ones() as u64).sum()
    }

    /// How many members of `self` are missing from `other`.
    pub(crate) fn missing_from(&self, other: &Bitmap) -> u64 {
        self.words
            .iter()
            .enumerate()
            .map(|(i, w)| (w & !other.words.get(i).copied().unwrap_or(0)).count_ones() as u64)
            .sum()
    }
}

/// What one receiver saw of one sender.
#[derive(Debug, Default, Clone)]
pub(crate) struct SenderTrack {
    pub seen: Bitmap,
    /// The highest counter seen, if any.
    pub max: Option<u64>,
    pub received: u64,
    pub duplicates: u64,
    /// Arrivals below the highest counter seen that were new (a gap being filled late).
    pub out_of_order: u64,
    /// Counters skipped over when a higher one arrived (filled later or not).
    pub gaps: u64,
}

/// What happened to one arrival.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Arrival {
    InOrder,
    /// Arrived after `skipped` counters that have not (yet) been seen.
    AfterGap {
        skipped: u64,
    },
    OutOfOrder,
    Duplicate,
}

impl SenderTrack {
    pub(crate) fn record(&mut self, counter: u64) -> Arrival {
        self.received += 1;
        if !self.seen.insert(counter) {
            self.duplicates += 1;
            return Arrival::Duplicate;
        }
        match self.max {
            Some(m) if counter < m => {
                self.out_of_order += 1;
                Arrival::OutOfOrder
            }
            prev => {
                let expected = prev.map_or(0, |m| m + 1);
                self.max = Some(counter);
                if counter > expected {
                    let skipped = counter - expected;
                    self.gaps += skipped;
                    Arrival::AfterGap { skipped }
                } else {
                    Arrival::InOrder
                }
            }
        }
    }

    /// Messages `acked` by the sender that never arrived here.
    pub(crate) fn lost(&self, acked: &Bitmap) -> u64 {
        acked.missing_from(&self.seen)
    }
}

/// The seq order of one room as one receiver saw it (the server promises no gaps, no repeats).
#[derive(Debug, Default, Clone)]
pub(crate) struct SeqTrack {
    pub last: Option<u64>,
    /// Seqs skipped (a message of the room never arrived here).
    pub gaps: u64,
    /// A seq at or below the last one.
    pub regressions: u64,
}

impl SeqTrack {
    pub(crate) fn record(&mut self, seq: u64) {
        match self.last {
            Some(l) if seq <= l => self.regressions += 1,
            Some(l) => {
                self.gaps += seq - l - 1;
                self.last = Some(seq);
            }
            None => self.last = Some(seq),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitmap_basics() {
        let mut b = Bitmap::default();
        assert!(b.insert(0));
        assert!(b.insert(130));
        assert!(!b.insert(130));
        assert!(b.contains(130));
        assert!(!b.contains(129));
        assert!(!b.contains(100_000));
        assert_eq!(b.len(), 2);
        let mut a = Bitmap::default();
        for i in 0..200 {
            a.insert(i);
        }
        assert_eq!(a.missing_from(&b), 198);
        assert_eq!(b.missing_from(&a), 0);
    }

    #[test]
    fn in_order_gap_dup_and_late() {
        let mut t = SenderTrack::default();
        assert_eq!(t.record(0), Arrival::InOrder);
        assert_eq!(t.record(1), Arrival::InOrder);
        assert_eq!(t.record(4), Arrival::AfterGap { skipped: 2 });
        assert_eq!(t.record(4), Arrival::Duplicate);
        assert_eq!(t.record(2), Arrival::OutOfOrder);
        assert_eq!(t.record(5), Arrival::InOrder);
        assert_eq!((t.received, t.duplicates, t.out_of_order, t.gaps), (6, 1, 1, 2));
        // 0..=5 acked; 3 never came.
        let mut acked = Bitmap::default();
        for i in 0..=5 {
            acked.insert(i);
        }
        assert_eq!(t.lost(&acked), 1);
    }

    #[test]
    fn first_arrival_not_zero_is_a_gap() {
        let mut t = SenderTrack::default();
        assert_eq!(t.record(3), Arrival::AfterGap { skipped: 3 });
    }

    #[test]
    fn unacked_messages_are_not_loss() {
        let mut t = SenderTrack::default();
        t.record(0);
        let mut acked = Bitmap::default();
        acked.insert(0);
        // Counter 1 was sent but never acked: not counted.
        assert_eq!(t.lost(&acked), 0);
    }

    #[test]
    fn seq_order() {
        let mut s = SeqTrack::default();
        for q in [5, 6, 8, 8, 7, 9] {
            s.record(q);
        }
        assert_eq!((s.last, s.gaps, s.regressions), (Some(9), 1, 2));
    }
}

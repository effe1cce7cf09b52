//! Which seqs a stream (or the publishers) saw, one bit each.

/// A set of seqs in `0..capacity`, one bit each.
pub struct SeqSet {
    words: Vec<u64>,
    capacity: u64,
}

impl SeqSet {
    pub fn new(capacity: u64) -> Self {
        let words = usize::try_from(capacity.div_ceil(64)).unwrap_or(usize::MAX);
        Self {
            words: vec![0; words],
            capacity,
        }
    }

    /// Adds `seq`; false when it was already there or is out of range.
    pub fn insert(&mut self, seq: u64) -> bool {
        if seq >= self.capacity {
            return false;
        }
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        let was_absent = self.words[word] & (1 << bit) == 0;
        self.words[word] |= 1 << bit;
        was_absent
    }

    pub fn len(&self) -> u64 {
        self.words
            .iter()
            .map(|word| u64::from(word.count_ones()))
            .sum()
    }

    /// Adds every seq of `other`, which must not hold seqs beyond this
    /// set's capacity (those are dropped).
    pub fn union_with(&mut self, other: &SeqSet) {
        for (mine, theirs) in self.words.iter_mut().zip(&other.words) {
            *mine |= theirs;
        }
    }

    /// How many seqs are in both sets.
    pub fn common_with(&self, other: &SeqSet) -> u64 {
        self.words
            .iter()
            .zip(&other.words)
            .map(|(mine, theirs)| u64::from((mine & theirs).count_ones()))
            .sum()
    }

    /// The lowest seq of `other` this set lacks.
    pub fn first_missing_of(&self, other: &SeqSet) -> Option<u64> {
        self.words
            .iter()
            .zip(&other.words)
            .enumerate()
            .find_map(|(word, (mine, theirs))| {
                let missing = theirs & !mine;
                (missing != 0).then(|| word as u64 * 64 + u64::from(missing.trailing_zeros()))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_missing_seq_is_the_lowest_one_lacking() {
        let (mut mine, mut theirs) = (SeqSet::new(200), SeqSet::new(200));
        for seq in [3, 70, 130] {
            theirs.insert(seq);
        }
        mine.insert(3);
        assert_eq!(mine.first_missing_of(&theirs), Some(70));
        mine.insert(70);
        mine.insert(130);
        assert_eq!(mine.first_missing_of(&theirs), None);
    }

    #[test]
    fn seq_sets_count_duplicates_and_overlap() {
        let mut seen = SeqSet::new(130);
        assert!(seen.insert(0));
        assert!(seen.insert(129));
        assert!(!seen.insert(129));
        assert!(!seen.insert(130));
        let mut acked = SeqSet::new(130);
        acked.insert(129);
        acked.insert(5);
        assert_eq!(seen.len(), 2);
        assert_eq!(seen.common_with(&acked), 1);
    }

    #[test]
    fn a_union_keeps_both_sets_seqs() {
        let mut later = SeqSet::new(200);
        later.insert(150);
        later.insert(3);
        let mut earlier = SeqSet::new(70);
        earlier.insert(3);
        earlier.insert(69);
        later.union_with(&earlier);
        assert_eq!(later.len(), 3);
        assert!(!later.insert(69));
        assert!(!later.insert(150));
    }
}

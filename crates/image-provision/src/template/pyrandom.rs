//! Python's `random.Random` (MT19937 with Python's seeding, `randrange`,
//! `choice`, `shuffle`), so that ansible's `random` and `shuffle` filters
//! with a `seed` give the very numbers and orders ansible gives (the
//! classic `{{ 60 | random(seed=inventory_hostname) }}` cron minute).

use sha2::Digest;

const N: usize = 624;
const M: usize = 397;

/// Python's `random.Random`.
pub(crate) struct PyRandom {
    mt: [u32; N],
    idx: usize,
}

impl PyRandom {
    fn init_genrand(s: u32) -> Self {
        let mut mt = [0u32; N];
        mt[0] = s;
        for i in 1..N {
            mt[i] = 1_812_433_253u32
                .wrapping_mul(mt[i - 1] ^ (mt[i - 1] >> 30))
                .wrapping_add(i as u32);
        }
        PyRandom { mt, idx: N }
    }

    fn init_by_array(key: &[u32]) -> Self {
        let mut r = Self::init_genrand(19_650_218);
        let mt = &mut r.mt;
        let (mut i, mut j) = (1usize, 0usize);
        for _ in 0..N.max(key.len()) {
            mt[i] = (mt[i] ^ (mt[i - 1] ^ (mt[i - 1] >> 30)).wrapping_mul(1_664_525))
                .wrapping_add(key[j])
                .wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= N {
                mt[0] = mt[N - 1];
                i = 1;
            }
            if j >= key.len() {
                j = 0;
            }
        }
        for _ in 0..N - 1 {
            mt[i] = (mt[i] ^ (mt[i - 1] ^ (mt[i - 1] >> 30)).wrapping_mul(1_566_083_941))
                .wrapping_sub(i as u32);
            i += 1;
            if i >= N {
                mt[0] = mt[N - 1];
                i = 1;
            }
        }
        mt[0] = 0x8000_0000;
        r
    }

    /// `Random(seed)` for a big-endian magnitude (Python's int seed).
    fn from_magnitude(be: &[u8]) -> Self {
        let mut words: Vec<u32> = be
            .rchunks(4)
            .map(|c| c.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)))
            .collect();
        while words.len() > 1 && words.last() == Some(&0) {
            words.pop();
        }
        if words.is_empty() {
            words.push(0);
        }
        Self::init_by_array(&words)
    }

    /// `Random(s)` for a string seed (Python 3's version 2 seeding).
    pub(crate) fn from_str_seed(s: &str) -> Self {
        let mut bytes = s.as_bytes().to_vec();
        bytes.extend_from_slice(&sha2::Sha512::digest(s.as_bytes()));
        Self::from_magnitude(&bytes)
    }

    /// `Random(n)` for an integer seed.
    pub(crate) fn from_int_seed(n: i64) -> Self {
        Self::from_magnitude(&n.unsigned_abs().to_be_bytes())
    }

    fn next_u32(&mut self) -> u32 {
        if self.idx >= N {
            for k in 0..N {
                let y = (self.mt[k] & 0x8000_0000) | (self.mt[(k + 1) % N] & 0x7fff_ffff);
                let mut v = self.mt[(k + M) % N] ^ (y >> 1);
                if y & 1 != 0 {
                    v ^= 0x9908_b0df;
                }
                self.mt[k] = v;
            }
            self.idx = 0;
        }
        let mut y = self.mt[self.idx];
        self.idx += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    fn getrandbits(&mut self, k: u32) -> u64 {
        if k <= 32 {
            return u64::from(self.next_u32() >> (32 - k));
        }
        let lo = u64::from(self.next_u32());
        let hi = u64::from(self.next_u32() >> (64 - k));
        (hi << 32) | lo
    }

    /// `_randbelow(n)`: uniform in `0..n`.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        let k = 64 - n.leading_zeros();
        loop {
            let r = self.getrandbits(k);
            if r < n {
                return r;
            }
        }
    }

    /// `randrange(start, stop, step)` (step > 0).
    pub(crate) fn randrange(&mut self, start: i64, stop: i64, step: i64) -> Option<i64> {
        let width = stop - start;
        if width <= 0 || step <= 0 {
            return None;
        }
        let n = (width + step - 1) / step;
        Some(start + step * self.below(n as u64) as i64)
    }

    /// `shuffle(list)`.
    pub(crate) fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn same_numbers_as_python() {
        // Values from CPython 3.11 (`random.Random(seed)`).
        assert_eq!(
            PyRandom::from_str_seed("host1").randrange(0, 60, 1),
            Some(31)
        );
        assert_eq!(
            PyRandom::from_str_seed("web01.example.com").randrange(0, 60, 1),
            Some(38)
        );
        let mut v: Vec<i32> = (1..=10).collect();
        PyRandom::from_str_seed("abc").shuffle(&mut v);
        assert_eq!(v, [5, 4, 1, 10, 2, 3, 7, 6, 8, 9]);
    }
}

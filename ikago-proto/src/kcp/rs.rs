//! Reed–Solomon erasure code over GF(2^8), bit-compatible with klauspost/reedsolomon
//!
//! kcp-go protects each group of data shards with klauspost/reedsolomon's default code: the field
//! GF(2^8) with polynomial 0x11D and generator 2, and a systematic encoding matrix made from a
//! Vandermonde matrix (entry `r^c`) times the inverse of its top square. Any `data` of the
//! `data + parity` shards rebuild the others.
//!
//! Shards live in one caller buffer, row `i` starting at `i * stride`, so encoding and
//! reconstruction allocate nothing; the inner loop is one lookup in a 64 KiB product table per byte.

/// Field polynomial x^8 + x^4 + x^3 + x^2 + 1 (klauspost/reedsolomon `galois.go`, "29" = 0x1D)
const POLYNOMIAL: u16 = 0x11d;

/// Most shards in one group (klauspost/reedsolomon `ErrMaxShardNum`: the field has 256 elements)
pub(crate) const MAX_SHARDS: usize = 256;

/// Powers of the generator 2, doubled so a sum of two logarithms needs no reduction
static EXP: [u8; 510] = exp_table();
/// Discrete logarithms base 2 (entry 0 is unused)
static LOG: [u8; 256] = log_table();
/// Products of every pair of field elements: `MUL[a][b] = a·b`
static MUL: [[u8; 256]; 256] = mul_table();

/// Builds [`EXP`]
const fn exp_table() -> [u8; 510] {
    let mut t = [0u8; 510];
    let mut x: u16 = 1;
    let mut i = 0;
    while i < 510 {
        t[i] = x as u8;
        x <<= 1;
        if x & 0x100 != 0 {
            x ^= POLYNOMIAL;
        }
        i += 1;
    }
    t
}

/// Builds [`LOG`]
const fn log_table() -> [u8; 256] {
    let exp = exp_table();
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 255 {
        t[exp[i] as usize] = i as u8;
        i += 1;
    }
    t
}

/// Builds [`MUL`]
const fn mul_table() -> [[u8; 256]; 256] {
    let exp = exp_table();
    let log = log_table();
    let mut t = [[0u8; 256]; 256];
    let mut a = 1;
    while a < 256 {
        let mut b = 1;
        while b < 256 {
            t[a][b] = exp[log[a] as usize + log[b] as usize];
            b += 1;
        }
        a += 1;
    }
    t
}

/// Product of two field elements
fn mul(a: u8, b: u8) -> u8 {
    MUL[usize::from(a)][usize::from(b)]
}

/// Multiplicative inverse of a non-zero field element
fn inverse(a: u8) -> u8 {
    EXP[255 - usize::from(LOG[usize::from(a)])]
}

/// `a` to the power `n`, with `0^0 = 1` (klauspost/reedsolomon `galExp`)
fn power(a: u8, n: usize) -> u8 {
    match (a, n) {
        (_, 0) => 1,
        (0, _) => 0,
        _ => EXP[usize::from(LOG[usize::from(a)]) * n % 255],
    }
}

/// Adds `c · input` to `out`, byte by byte
fn mul_add(c: u8, input: &[u8], out: &mut [u8]) {
    match c {
        0 => {}
        1 => out.iter_mut().zip(input).for_each(|(o, i)| *o ^= i),
        _ => {
            let row = &MUL[usize::from(c)];
            out.iter_mut()
                .zip(input)
                .for_each(|(o, &i)| *o ^= row[usize::from(i)]);
        }
    }
}

/// Row `src` for reading and row `dst` for writing, both `len` bytes, of a strided buffer
fn two_rows(
    buf: &mut [u8],
    stride: usize,
    len: usize,
    src: usize,
    dst: usize,
) -> (&[u8], &mut [u8]) {
    debug_assert_ne!(src, dst);
    if src < dst {
        let (a, b) = buf.split_at_mut(dst * stride);
        (&a[src * stride..][..len], &mut b[..len])
    } else {
        let (a, b) = buf.split_at_mut(src * stride);
        (&b[..len], &mut a[dst * stride..][..len])
    }
}

/// Inverts the `n`×`n` matrix `m` into `out` by Gauss–Jordan elimination on `work` (`n`×`2n`)
fn invert(m: &[u8], n: usize, work: &mut [u8], out: &mut [u8]) -> Result<(), RsError> {
    let w = 2 * n;
    for r in 0..n {
        work[r * w..r * w + n].copy_from_slice(&m[r * n..(r + 1) * n]);
        work[r * w + n..(r + 1) * w].fill(0);
        work[r * w + n + r] = 1;
    }
    for col in 0..n {
        let pivot = (col..n)
            .find(|&r| work[r * w + col] != 0)
            .ok_or(RsError::Singular)?;
        if pivot != col {
            for j in 0..w {
                work.swap(pivot * w + j, col * w + j);
            }
        }
        let scale = inverse(work[col * w + col]);
        for j in 0..w {
            work[col * w + j] = mul(scale, work[col * w + j]);
        }
        for r in (0..n).filter(|&r| r != col) {
            let f = work[r * w + col];
            if f != 0 {
                for j in 0..w {
                    let v = mul(f, work[col * w + j]);
                    work[r * w + j] ^= v;
                }
            }
        }
    }
    for r in 0..n {
        out[r * n..(r + 1) * n].copy_from_slice(&work[r * w + n..(r + 1) * w]);
    }
    Ok(())
}

/// Why an encode or a reconstruction failed
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RsError {
    /// Zero data or parity shards, or more than [`MAX_SHARDS`] in total
    #[error("need at least one data and one parity shard and at most 256 shards in total")]
    ShardCount,
    /// Fewer shards present than there are data shards
    #[error("too few shards to reconstruct")]
    TooFewShards,
    /// The buffer cannot hold every row, or a shard is longer than the stride
    #[error("shard buffer does not match its layout")]
    Layout,
    /// The chosen rows do not form an invertible matrix (impossible for this code)
    #[error("singular decoding matrix")]
    Singular,
}

/// A Reed–Solomon codec for `data` data shards and `parity` parity shards
#[derive(Debug, Clone)]
pub(crate) struct ReedSolomon {
    /// Number of data shards
    data: usize,
    /// Number of data plus parity shards
    total: usize,
    /// The `total`×`data` systematic encoding matrix, row-major; its top rows are the identity
    matrix: Vec<u8>,
    /// The square sub-matrix of the rows used for a reconstruction
    sub: Vec<u8>,
    /// The inverse of `sub`
    decode: Vec<u8>,
    /// Gauss–Jordan workspace, `data`×`2·data`
    work: Vec<u8>,
    /// The rows used for a reconstruction
    rows: Vec<usize>,
}

impl ReedSolomon {
    /// A codec for `data` + `parity` shards, the matrix built as klauspost's `New(data, parity)`
    pub(crate) fn new(data: usize, parity: usize) -> Result<Self, RsError> {
        let total = data + parity;
        if data == 0 || parity == 0 || total > MAX_SHARDS {
            return Err(RsError::ShardCount);
        }
        let vandermonde: Vec<u8> = (0..total)
            .flat_map(|r| (0..data).map(move |c| power(r as u8, c)))
            .collect();
        let mut codec = Self {
            data,
            total,
            matrix: vec![0; total * data],
            sub: vec![0; data * data],
            decode: vec![0; data * data],
            work: vec![0; data * 2 * data],
            rows: Vec::with_capacity(data),
        };
        invert(
            &vandermonde[..data * data],
            data,
            &mut codec.work,
            &mut codec.sub,
        )?;
        for r in 0..total {
            for c in 0..data {
                codec.matrix[r * data + c] = (0..data).fold(0, |acc, k| {
                    acc ^ mul(vandermonde[r * data + k], codec.sub[k * data + c])
                });
            }
        }
        Ok(codec)
    }

    /// Checks that `buf` holds `total` rows of `len` bytes at `stride`
    fn check_layout(&self, buf: &[u8], stride: usize, len: usize) -> Result<(), RsError> {
        if len > stride || buf.len() < (self.total - 1) * stride + len {
            return Err(RsError::Layout);
        }
        Ok(())
    }

    /// Computes the parity rows (`data..total`) of `buf` from its data rows, each `len` bytes
    pub(crate) fn encode(&self, buf: &mut [u8], stride: usize, len: usize) -> Result<(), RsError> {
        self.check_layout(buf, stride, len)?;
        for p in self.data..self.total {
            buf[p * stride..][..len].fill(0);
            for k in 0..self.data {
                let (src, dst) = two_rows(buf, stride, len, k, p);
                mul_add(self.matrix[p * self.data + k], src, dst);
            }
        }
        Ok(())
    }

    /// Rebuilds the data rows of `buf` that `present` marks missing (klauspost `ReconstructData`)
    ///
    /// Uses the first `data` present rows; missing parity rows stay as they are.
    pub(crate) fn reconstruct_data(
        &mut self,
        buf: &mut [u8],
        stride: usize,
        len: usize,
        present: &[bool],
    ) -> Result<(), RsError> {
        self.check_layout(buf, stride, len)?;
        if present.len() != self.total {
            return Err(RsError::Layout);
        }
        if present[..self.data].iter().all(|&p| p) {
            return Ok(());
        }
        self.rows.clear();
        self.rows
            .extend((0..self.total).filter(|&r| present[r]).take(self.data));
        if self.rows.len() < self.data {
            return Err(RsError::TooFewShards);
        }
        let d = self.data;
        for (k, &r) in self.rows.iter().enumerate() {
            self.sub[k * d..(k + 1) * d].copy_from_slice(&self.matrix[r * d..(r + 1) * d]);
        }
        invert(&self.sub, d, &mut self.work, &mut self.decode)?;
        for i in (0..d).filter(|&i| !present[i]) {
            buf[i * stride..][..len].fill(0);
            for (k, &r) in self.rows.iter().enumerate() {
                let (src, dst) = two_rows(buf, stride, len, r, i);
                mul_add(self.decode[i * d + k], src, dst);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lays `shards` (equal lengths) out as rows of a buffer with stride `len`
    fn layout(shards: &[&[u8]], total: usize) -> Vec<u8> {
        let len = shards[0].len();
        let mut buf = vec![0u8; total * len];
        for (i, s) in shards.iter().enumerate() {
            buf[i * len..][..len].copy_from_slice(s);
        }
        buf
    }

    #[test]
    fn field_tables_are_consistent() {
        for a in 1..=255u8 {
            assert_eq!(mul(a, inverse(a)), 1, "a={a}");
            assert_eq!(mul(a, 1), a);
            assert_eq!(mul(a, 0), 0);
        }
        // 2^8 reduces by the polynomial: x^8 = x^4 + x^3 + x^2 + 1
        assert_eq!(EXP[8], 0x1d);
        assert_eq!(power(2, 8), 0x1d);
        assert_eq!(power(0, 0), 1);
        assert_eq!(power(0, 3), 0);
    }

    #[test]
    fn klauspost_known_answer() {
        // klauspost/reedsolomon TestOneEncode
        let codec = ReedSolomon::new(5, 5).unwrap();
        let data: [&[u8]; 5] = [&[0, 1], &[4, 5], &[2, 3], &[6, 7], &[8, 9]];
        let mut buf = layout(&data, 10);
        codec.encode(&mut buf, 2, 2).unwrap();
        let parity: Vec<[u8; 2]> = (5..10).map(|i| [buf[i * 2], buf[i * 2 + 1]]).collect();
        assert_eq!(parity, [[12, 13], [10, 11], [14, 15], [90, 91], [94, 95]]);
    }

    #[test]
    fn top_of_matrix_is_identity() {
        let codec = ReedSolomon::new(10, 3).unwrap();
        for r in 0..10 {
            for c in 0..10 {
                assert_eq!(codec.matrix[r * 10 + c], u8::from(r == c));
            }
        }
    }

    /// Every subset of at most `parity` missing rows is rebuilt exactly
    fn reconstruct_every_subset(data: usize, parity: usize, len: usize) {
        let total = data + parity;
        let mut codec = ReedSolomon::new(data, parity).unwrap();
        let stride = len + 3;
        let mut original = vec![0u8; total * stride];
        for (i, b) in original.iter_mut().enumerate() {
            *b = (i * 131 + 7) as u8;
        }
        codec.encode(&mut original, stride, len).unwrap();
        let mut checked = 0;
        for mask in 0u32..(1 << total) {
            if mask.count_ones() as usize > parity {
                continue;
            }
            let present: Vec<bool> = (0..total).map(|i| mask & (1 << i) == 0).collect();
            let mut buf = original.clone();
            for i in (0..total).filter(|&i| !present[i]) {
                buf[i * stride..][..len].fill(0xa5);
            }
            codec
                .reconstruct_data(&mut buf, stride, len, &present)
                .unwrap();
            for i in 0..data {
                assert_eq!(
                    buf[i * stride..][..len],
                    original[i * stride..][..len],
                    "mask {mask:#b} row {i}"
                );
            }
            checked += 1;
        }
        assert!(checked > total);
    }

    #[test]
    fn reconstructs_every_subset_5_5() {
        reconstruct_every_subset(5, 5, 17);
    }

    #[test]
    fn reconstructs_every_subset_10_3() {
        reconstruct_every_subset(10, 3, 64);
    }

    #[test]
    fn reconstructs_every_subset_1_2() {
        reconstruct_every_subset(1, 2, 5);
    }

    #[test]
    fn too_few_shards_and_bad_layouts_are_errors() {
        let mut codec = ReedSolomon::new(3, 2).unwrap();
        let mut buf = vec![0u8; 5 * 4];
        let present = [false, false, false, true, true];
        assert_eq!(
            codec.reconstruct_data(&mut buf, 4, 4, &present),
            Err(RsError::TooFewShards)
        );
        assert_eq!(codec.encode(&mut buf, 4, 5), Err(RsError::Layout));
        assert_eq!(codec.encode(&mut buf[..15], 4, 4), Err(RsError::Layout));
        assert_eq!(
            codec.reconstruct_data(&mut buf, 4, 4, &[true; 3]),
            Err(RsError::Layout)
        );
        assert_eq!(ReedSolomon::new(0, 3).unwrap_err(), RsError::ShardCount);
        assert_eq!(ReedSolomon::new(3, 0).unwrap_err(), RsError::ShardCount);
        assert_eq!(ReedSolomon::new(200, 57).unwrap_err(), RsError::ShardCount);
        assert!(ReedSolomon::new(200, 56).is_ok());
    }
}

//! Event time: seconds and microseconds since the Unix epoch, with UTC calendar conversion.

use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct Timestamp {
    pub secs: i64,
    pub micros: u32,
}

impl Timestamp {
    pub fn now() -> Self {
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp {
            secs: d.as_secs() as i64,
            micros: d.subsec_micros(),
        }
    }

    /// (year, month, day, hour, minute, second) in UTC, shifted by `offset_secs`.
    pub fn civil(self, offset_secs: i64) -> (i64, u32, u32, u32, u32, u32) {
        let t = self.secs + offset_secs;
        let days = t.div_euclid(86_400);
        let sod = t.rem_euclid(86_400) as u32;
        // Howard Hinnant's civil_from_days.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let y = yoe + era * 400 + i64::from(m <= 2);
        (y, m, d, sod / 3600, sod / 60 % 60, sod % 60)
    }

    /// `2026-11-23T14:03:57.625094` (no zone), shifted by `offset_secs`.
    pub fn write_iso(self, offset_secs: i64, out: &mut Vec<u8>) {
        let (y, mo, d, h, mi, s) = self.civil(offset_secs);
        let mut b = itoa_buf();
        push_padded(out, y as u64, 4, &mut b);
        out.push(b'-');
        push_padded(out, mo as u64, 2, &mut b);
        out.push(b'-');
        push_padded(out, d as u64, 2, &mut b);
        out.push(b'T');
        push_padded(out, h as u64, 2, &mut b);
        out.push(b':');
        push_padded(out, mi as u64, 2, &mut b);
        out.push(b':');
        push_padded(out, s as u64, 2, &mut b);
        out.push(b'.');
        push_padded(out, self.micros as u64, 6, &mut b);
    }

    /// RFC 3339 UTC with microseconds: `2026-11-23T14:03:57.625094Z`. The date-time text of the
    /// last second is remembered per thread: records come many to a second.
    pub fn write_rfc3339_utc(self, out: &mut Vec<u8>) {
        thread_local! {
            static LAST: std::cell::Cell<(i64, [u8; 19])> = const { std::cell::Cell::new((i64::MIN, [0; 19])) };
        }
        let (secs, text) = LAST.with(|c| c.get());
        let text = if secs == self.secs {
            text
        } else {
            let mut v = Vec::with_capacity(26);
            Timestamp {
                secs: self.secs,
                micros: 0,
            }
            .write_iso(0, &mut v);
            let mut t = [0u8; 19];
            t.copy_from_slice(&v[..19]);
            LAST.with(|c| c.set((self.secs, t)));
            t
        };
        out.extend_from_slice(&text);
        out.push(b'.');
        let mut b = [b'0'; 6];
        let mut u = self.micros.min(999_999);
        for d in b.iter_mut().rev() {
            *d = b'0' + (u % 10) as u8;
            u /= 10;
        }
        out.extend_from_slice(&b);
        out.push(b'Z');
    }
}

fn itoa_buf() -> [u8; 20] {
    [0; 20]
}

fn push_padded(out: &mut Vec<u8>, v: u64, width: usize, scratch: &mut [u8; 20]) {
    let mut n = v;
    let mut i = scratch.len();
    loop {
        i -= 1;
        scratch[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for _ in (scratch.len() - i)..width {
        out.push(b'0');
    }
    out.extend_from_slice(&scratch[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        let t = Timestamp {
            secs: 1_795_442_637,
            micros: 625_094,
        };
        let mut v = Vec::new();
        t.write_rfc3339_utc(&mut v);
        assert_eq!(String::from_utf8(v).unwrap(), "2026-11-23T14:03:57.625094Z");
        let mut v = Vec::new();
        Timestamp {
            secs: 951_782_400,
            micros: 5,
        }
        .write_iso(3600, &mut v);
        assert_eq!(String::from_utf8(v).unwrap(), "2000-02-29T01:00:00.000005");
    }
}

//! KCP tuning from `--kcp-*` flags and the file's `kcp-tuning` object, validated per reference
//! §5.2 and the core's limits, with the original's defaults

use crate::args::KcpArgs;
use crate::error::Error;
use ikago_proto::KcpTuning;

/// Checks `value` against `min..=max` and converts it
fn ranged(
    name: &'static str,
    value: Option<i64>,
    default: u32,
    min: i64,
    max: i64,
    expected: &'static str,
) -> Result<u32, Error> {
    match value {
        None => Ok(default),
        Some(v) if (min..=max).contains(&v) => u32::try_from(v).map_err(|_| Error::KcpRange {
            name,
            value: v,
            expected,
        }),
        Some(v) => Err(Error::KcpRange {
            name,
            value: v,
            expected,
        }),
    }
}

/// Validates the given values and fills the rest with the original's defaults
pub fn tuning_from_args(a: &KcpArgs) -> Result<KcpTuning, Error> {
    let d = KcpTuning::default();
    let window = |name, v: Option<i64>, default: u16| {
        ranged(name, v, u32::from(default), 1, 65535, "1-65535").map(|v| v as u16)
    };
    let shards = |name, v: Option<i64>, default: u8| {
        ranged(name, v, u32::from(default), 0, 255, "0-255").map(|v| v as u8)
    };
    let max = i64::from(u32::MAX);
    let tuning = KcpTuning {
        mtu: ranged("mtu", a.mtu, u32::from(d.mtu), 50, 1500, "50-1500")? as u16,
        sndwnd: window("sndwnd", a.sndwnd, d.sndwnd)?,
        rcvwnd: window("rcvwnd", a.rcvwnd, d.rcvwnd)?,
        datashard: shards("datashard", a.datashard, d.datashard)?,
        parityshard: shards("parityshard", a.parityshard, d.parityshard)?,
        acknodelay: a.acknodelay.unwrap_or(d.acknodelay),
        nodelay: a.nodelay.unwrap_or(d.nodelay),
        interval_ms: ranged(
            "interval",
            a.interval,
            d.interval_ms,
            0,
            max,
            "must be 0 or more",
        )?,
        resend: ranged("resend", a.resend, d.resend, 0, max, "must be 0 or more")?,
        nc: ranged("nc", a.nc, u32::from(d.nc), 0, max, "must be 0 or more")? > 0,
    };
    tuning.validate().map_err(Error::Kcp)?;
    Ok(tuning)
}

/// The file's `kcp-tuning` object for `t`: [`tuning_from_args`] of it gives `t` again
pub(crate) fn tuning_keys(t: &KcpTuning) -> serde_json::Value {
    serde_json::json!({
        "mtu": t.mtu,
        "sndwnd": t.sndwnd,
        "rcvwnd": t.rcvwnd,
        "datashard": t.datashard,
        "parityshard": t.parityshard,
        "acknodelay": t.acknodelay,
        "nodelay": t.nodelay,
        "interval": t.interval_ms,
        "resend": t.resend,
        "nc": u32::from(t.nc),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_ranges() {
        assert_eq!(
            tuning_from_args(&KcpArgs::default()).unwrap(),
            KcpTuning::default()
        );
        let ok = KcpArgs {
            mtu: Some(1500),
            sndwnd: Some(1),
            datashard: Some(0),
            nc: Some(1),
            ..Default::default()
        };
        let t = tuning_from_args(&ok).unwrap();
        assert_eq!(
            (t.mtu, t.sndwnd, t.datashard, t.nc, t.rcvwnd),
            (1500, 1, 0, true, 32)
        );
        let cases: [(KcpArgs, &str); 4] = [
            (
                KcpArgs {
                    mtu: Some(1501),
                    ..Default::default()
                },
                "kcp-mtu 1501 out of range (50-1500)",
            ),
            (
                KcpArgs {
                    sndwnd: Some(0),
                    ..Default::default()
                },
                "kcp-sndwnd 0 out of range (1-65535)",
            ),
            (
                KcpArgs {
                    rcvwnd: Some(-3),
                    ..Default::default()
                },
                "kcp-rcvwnd -3 out of range (1-65535)",
            ),
            (
                KcpArgs {
                    resend: Some(-1),
                    ..Default::default()
                },
                "kcp-resend -1 out of range (must be 0 or more)",
            ),
        ];
        for (args, msg) in cases {
            assert_eq!(tuning_from_args(&args).unwrap_err().to_string(), msg);
        }
    }
}

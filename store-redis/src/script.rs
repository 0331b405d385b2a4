//! The one round trip of an exchange: a Lua script, so pushing, publishing and reading are
//! atomic and cost one request per sync interval.
//!
//! Every key the script touches is passed in `KEYS` and carries the same hash tag, so the
//! script runs unchanged on Redis Cluster.

use redis::aio::ConnectionLike;
use redis::{RedisError, Script, Value};

/// `KEYS`: incarnation, state, seq, then the window's bucket keys (oldest first).
///
/// `ARGV`: bucket TTL (ms), incarnation candidate, mode (`budget` | `breaker`), believed
/// sequence number, state to publish (empty for none), TTL of the incarnation, state and
/// sequence keys (ms), first field, second field, format version, then two amounts per
/// bucket key.
///
/// Returns: incarnation, sequence number, state (empty if none), 1 if the counts were
/// pushed and read (0 when the believed sequence number is stale), then two counts per
/// bucket key.
const SOURCE: &str = r#"
local inc = redis.call('GET', KEYS[1])
if not inc then
  inc = ARGV[2]
  redis.call('SET', KEYS[1], inc)
end
redis.call('PEXPIRE', KEYS[1], ARGV[6])
local seq = 0
local state = ''
if ARGV[3] == 'breaker' then
  if ARGV[5] ~= '' then
    seq = redis.call('INCR', KEYS[3])
    redis.call('SET', KEYS[2], ARGV[9] .. ' ' .. seq .. ' ' .. ARGV[5], 'PX', ARGV[6])
  else
    seq = tonumber(redis.call('GET', KEYS[3]) or '0') or 0
  end
  redis.call('PEXPIRE', KEYS[3], ARGV[6])
  state = redis.call('GET', KEYS[2]) or ''
end
local out = {inc, seq, state, 0}
if ARGV[3] == 'breaker' and tonumber(ARGV[4]) ~= seq then
  return out
end
out[4] = 1
for i = 4, #KEYS do
  local j = 10 + 2 * (i - 4)
  local a = tonumber(ARGV[j]) or 0
  local b = tonumber(ARGV[j + 1]) or 0
  if a > 0 then redis.call('HINCRBY', KEYS[i], ARGV[7], a) end
  if b > 0 then redis.call('HINCRBY', KEYS[i], ARGV[8], b) end
  if a > 0 or b > 0 then redis.call('PEXPIRE', KEYS[i], ARGV[1]) end
  local v = redis.call('HMGET', KEYS[i], ARGV[7], ARGV[8])
  out[#out + 1] = tonumber(v[1]) or 0
  out[#out + 1] = tonumber(v[2]) or 0
end
return out
"#;

/// One exchange's request.
pub(crate) struct Request<'a> {
    pub(crate) incarnation_key: &'a str,
    pub(crate) state_key: &'a str,
    pub(crate) seq_key: &'a str,
    pub(crate) buckets: &'a [(String, [u64; 2])],
    pub(crate) bucket_ttl_ms: u64,
    pub(crate) incarnation: &'a str,
    pub(crate) breaker: bool,
    pub(crate) believed_seq: u64,
    pub(crate) publish: &'a str,
    pub(crate) meta_ttl_ms: u64,
    pub(crate) fields: [&'a str; 2],
}

/// One exchange's answer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) incarnation: String,
    pub(crate) seq: u64,
    pub(crate) state: String,
    /// The fleet's counts per bucket key; `None` when the believed sequence was stale.
    pub(crate) counts: Option<Vec<[u64; 2]>>,
}

pub(crate) fn script() -> Script {
    Script::new(SOURCE)
}

/// Runs the exchange's script (EVALSHA, loading it again after a restart flushed it).
pub(crate) async fn run<C: ConnectionLike>(
    script: &Script,
    conn: &mut C,
    r: &Request<'_>,
) -> Result<Answer, RedisError> {
    let mut inv = script.key(r.incarnation_key);
    inv.key(r.state_key).key(r.seq_key);
    for (k, _) in r.buckets {
        inv.key(k);
    }
    inv.arg(r.bucket_ttl_ms)
        .arg(r.incarnation)
        .arg(if r.breaker { "breaker" } else { "budget" })
        .arg(r.believed_seq)
        .arg(r.publish)
        .arg(r.meta_ttl_ms)
        .arg(r.fields[0])
        .arg(r.fields[1])
        .arg(crate::exchange::FORMAT);
    for (_, add) in r.buckets {
        inv.arg(add[0]).arg(add[1]);
    }
    let v: Vec<Value> = inv.invoke_async(conn).await?;
    parse(&v).ok_or_else(|| {
        RedisError::from((
            redis::ErrorKind::UnexpectedReturnType,
            "unexpected answer from the exchange script",
        ))
    })
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::Nil => Some(String::new()),
        _ => None,
    }
}

fn int(v: &Value) -> Option<u64> {
    match v {
        Value::Int(i) => u64::try_from(*i).ok(),
        other => text(other)?.parse().ok(),
    }
}

fn parse(v: &[Value]) -> Option<Answer> {
    let [inc, seq, state, pushed, rest @ ..] = v else {
        return None;
    };
    let counts = if int(pushed)? == 1 {
        if rest.len() % 2 != 0 {
            return None;
        }
        let mut out = Vec::with_capacity(rest.len() / 2);
        for pair in rest.chunks_exact(2) {
            out.push([int(&pair[0])?, int(&pair[1])?]);
        }
        Some(out)
    } else {
        None
    };
    Some(Answer {
        incarnation: text(inc)?,
        seq: int(seq)?,
        state: text(state)?,
        counts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn answers_parse_with_and_without_counts() {
        let a = parse(&[
            bulk("abc"),
            Value::Int(3),
            bulk("1 3 close x"),
            Value::Int(1),
            Value::Int(2),
            Value::Int(5),
        ])
        .unwrap();
        assert_eq!(a.counts, Some(vec![[2, 5]]));
        assert_eq!((a.seq, a.state.as_str()), (3, "1 3 close x"));
        let b = parse(&[bulk("abc"), Value::Int(4), bulk(""), Value::Int(0)]).unwrap();
        assert_eq!(b.counts, None);
        assert!(parse(&[bulk("abc")]).is_none());
        assert!(parse(&[bulk("a"), Value::Int(-1), bulk(""), Value::Int(0)]).is_none());
        assert!(
            parse(&[
                bulk("a"),
                Value::Int(1),
                bulk(""),
                Value::Int(1),
                Value::Int(1)
            ])
            .is_none()
        );
    }
}

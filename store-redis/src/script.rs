//! The one round trip of an exchange: a Lua script, so pushing, publishing and reading are
//! atomic and cost one request per sync interval.
//!
//! Every key the script touches is passed in `KEYS` and carries the same hash tag, so the
//! script runs unchanged on Redis Cluster.

use redis::aio::ConnectionLike;
use redis::{RedisError, Script, Value};

/// `KEYS`: incarnation, state, seq, members, published, then the window's bucket keys
/// (oldest first).
///
/// `ARGV`: 1 bucket TTL (ms), 2 incarnation candidate, 3 mode (`budget` | `breaker`),
/// 4 unused (0), 5 state to publish (empty for none), 6 TTL of the
/// incarnation, state, sequence and members keys (ms), 7 first field, 8 second field,
/// 9 format version, 10 this process's member id, 11 now on the wall clock (ms), 12 the
/// oldest exchange of a member that still counts (ms; 0: do not track members), 13 the
/// token of the state to publish (the breaker's generation), then this process's own two
/// counts (absolute) per bucket key.
///
/// A state is published only if this process has not published the same token before
/// (the `published` hash remembers each process's last token), so an exchange repeated
/// after a lost reply does not publish its decision a second time over a newer one.
///
/// Each bucket hash holds the fleet's totals (fields `<first>`, `<second>`) and every
/// instance's own counts (`<instance>:<first>`, `<instance>:<second>`). A push raises an
/// instance's own count to the value sent and adds the difference to the total, so a push
/// repeated (a reply lost, a retry) changes nothing, and a store that lost its data gets
/// each instance's whole count back at its next push.
///
/// A breaker's bucket hash also holds `s`, the fleet's sequence number its counts belong
/// to; a bucket from before the current transition is emptied before it is used, so the
/// counts of a new breaker state start from zero with no round trip lost.
///
/// Returns: incarnation, sequence number, state (empty if none), 1 (the counts were
/// pushed and read; kept for the answer's layout), the others' two counts
/// over the window, the number of members (processes that exchanged since ARGV 12, this
/// one included), and 1 if this exchange published its state.
const SOURCE: &str = r#"
local inc = redis.call('GET', KEYS[1])
if not inc then
  inc = ARGV[2]
  redis.call('SET', KEYS[1], inc)
end
redis.call('PEXPIRE', KEYS[1], ARGV[6])
local seq = 0
local state = ''
local published = 0
if ARGV[3] == 'breaker' then
  if ARGV[5] ~= '' and redis.call('HGET', KEYS[5], ARGV[10]) ~= ARGV[13] then
    seq = redis.call('INCR', KEYS[3])
    redis.call('SET', KEYS[2], ARGV[9] .. ' ' .. seq .. ' ' .. ARGV[5], 'PX', ARGV[6])
    redis.call('HSET', KEYS[5], ARGV[10], ARGV[13])
    published = 1
  else
    seq = tonumber(redis.call('GET', KEYS[3]) or '0') or 0
  end
  redis.call('PEXPIRE', KEYS[2], ARGV[6])
  redis.call('PEXPIRE', KEYS[3], ARGV[6])
  redis.call('PEXPIRE', KEYS[5], ARGV[6])
  state = redis.call('GET', KEYS[2]) or ''
end
local fa = ARGV[10] .. ':' .. ARGV[7]
local fb = ARGV[10] .. ':' .. ARGV[8]
local oa = 0
local ob = 0
for i = 6, #KEYS do
  local j = 14 + 2 * (i - 6)
  local a = tonumber(ARGV[j]) or 0
  local b = tonumber(ARGV[j + 1]) or 0
  if ARGV[3] == 'breaker' then
    -- A breaker's bucket counts only under the fleet's current transition: one holding
    -- counts from before it starts again.
    local s = redis.call('HGET', KEYS[i], 's')
    if s and tonumber(s) ~= seq then
      redis.call('DEL', KEYS[i])
    end
  end
  local v = redis.call('HMGET', KEYS[i], ARGV[7], ARGV[8], fa, fb)
  local ta = tonumber(v[1]) or 0
  local tb = tonumber(v[2]) or 0
  local ma = tonumber(v[3]) or 0
  local mb = tonumber(v[4]) or 0
  local touched = false
  if a > ma then
    redis.call('HINCRBY', KEYS[i], ARGV[7], a - ma)
    redis.call('HSET', KEYS[i], fa, ARGV[j])
    ta = ta + a - ma
    ma = a
    touched = true
  end
  if b > mb then
    redis.call('HINCRBY', KEYS[i], ARGV[8], b - mb)
    redis.call('HSET', KEYS[i], fb, ARGV[j + 1])
    tb = tb + b - mb
    mb = b
    touched = true
  end
  if touched then
    if ARGV[3] == 'breaker' then
      redis.call('HSET', KEYS[i], 's', seq)
    end
    redis.call('PEXPIRE', KEYS[i], ARGV[1])
  end
  if ta > ma then oa = oa + ta - ma end
  if tb > mb then ob = ob + tb - mb end
end
local members = 0
if ARGV[12] ~= '0' then
  redis.call('ZADD', KEYS[4], ARGV[11], ARGV[10])
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. ARGV[12])
  redis.call('PEXPIRE', KEYS[4], ARGV[6])
  members = redis.call('ZCARD', KEYS[4])
end
return {inc, seq, state, 1, oa, ob, members, published}
"#;

/// One exchange's request.
pub(crate) struct Request<'a> {
    pub(crate) incarnation_key: &'a str,
    pub(crate) state_key: &'a str,
    pub(crate) seq_key: &'a str,
    pub(crate) members_key: &'a str,
    pub(crate) published_key: &'a str,
    /// Bucket keys with this instance's own (absolute) counts in each.
    pub(crate) buckets: &'a [(String, [u64; 2])],
    pub(crate) bucket_ttl_ms: u64,
    pub(crate) incarnation: &'a str,
    pub(crate) breaker: bool,
    pub(crate) publish: &'a str,
    pub(crate) meta_ttl_ms: u64,
    pub(crate) fields: [&'a str; 2],
    pub(crate) instance: &'a str,
    pub(crate) wall_ms: u64,
    /// Members that exchanged at or after this wall-clock instant count; 0 does not track
    /// members.
    pub(crate) members_since_ms: u64,
    /// What makes the published state unique for this process (its breaker's generation).
    pub(crate) publish_token: u64,
}

/// One exchange's answer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) incarnation: String,
    pub(crate) seq: u64,
    pub(crate) state: String,
    /// What the other instances counted over the window; `None` if the script did not read
    /// counts.
    pub(crate) others: Option<[u64; 2]>,
    /// Instances sharing a budget that exchanged recently, this one included.
    pub(crate) members: u64,
    /// Whether this exchange published the state it was given.
    pub(crate) published: bool,
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
    inv.key(r.state_key)
        .key(r.seq_key)
        .key(r.members_key)
        .key(r.published_key);
    for (k, _) in r.buckets {
        inv.key(k);
    }
    inv.arg(r.bucket_ttl_ms)
        .arg(r.incarnation)
        .arg(if r.breaker { "breaker" } else { "budget" })
        .arg(0)
        .arg(r.publish)
        .arg(r.meta_ttl_ms)
        .arg(r.fields[0])
        .arg(r.fields[1])
        .arg(crate::exchange::FORMAT)
        .arg(r.instance)
        .arg(r.wall_ms)
        .arg(r.members_since_ms)
        .arg(r.publish_token);
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
    let [inc, seq, state, pushed, a, b, members, published] = v else {
        return None;
    };
    Some(Answer {
        incarnation: text(inc)?,
        seq: int(seq)?,
        state: text(state)?,
        others: match int(pushed)? {
            1 => Some([int(a)?, int(b)?]),
            _ => None,
        },
        members: int(members)?,
        published: int(published)? == 1,
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
        let i = Value::Int;
        let a = parse(&[
            bulk("abc"),
            i(3),
            bulk("1 3 close x"),
            i(1),
            i(2),
            i(5),
            i(4),
            i(1),
        ])
        .unwrap();
        assert_eq!(a.others, Some([2, 5]));
        assert_eq!((a.seq, a.state.as_str(), a.members), (3, "1 3 close x", 4));
        let b = parse(&[bulk("abc"), i(4), bulk(""), i(0), i(0), i(0), i(0), i(0)]).unwrap();
        assert_eq!(b.others, None);
        assert!(parse(&[bulk("abc")]).is_none());
        assert!(parse(&[bulk("a"), i(-1), bulk(""), i(0), i(0), i(0), i(0), i(0)]).is_none());
    }
}

//! The breaker's state machine, as it runs on the server: one Lua script
//! over one hash key, one operation per round trip.

use std::time::Duration;

use kompoz_core::CircuitState;

/// Every operation reads the key, checks its configuration, reads the
/// server's clock and writes the state back (refreshing the key's TTL).
///
/// `ARGV`: op, failure_threshold, recovery_us, half_open_max_calls,
/// probe_lease_us, generation (for reports), ttl_ms.
///
/// Ops: `sync` (read, registering the configuration), `acquire` (OPEN past
/// its deadline moves to HALF_OPEN; HALF_OPEN hands out a probe slot if one
/// is free; probe slots whose lease ran out are taken back under a new
/// generation), `failure` / `success` / `cancel` (a call's outcome, ignored
/// when its generation is not the current one), `reset`.
///
/// Reply: `{verdict, state, generation, open_until_us, now_us, failures,
/// probes}` (probe slots whose lease ran out are shown free) with verdict `view`, `closed`, `probe`, `rejected`, `recorded`
/// or `stale`; or `{"conflict", threshold, recovery_us, half_open}`.
pub(super) const BREAKER_LUA: &str = r"
local key = KEYS[1]
local op = ARGV[1]
local h = redis.call('HMGET', key, 'threshold', 'recovery_us', 'half_open', 'state', 'gen',
  'open_until', 'failures', 'probes', 'probe_ok', 'lease_until')
if h[1] and (h[1] ~= ARGV[2] or h[2] ~= ARGV[3] or h[3] ~= ARGV[4]) then
  return {'conflict', h[1], h[2] or '', h[3] or ''}
end
if not h[1] and redis.call('EXISTS', key) == 1 then
  return {'conflict', 'a key of another kind (not a breaker)', '', ''}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local threshold = tonumber(ARGV[2])
local recovery = tonumber(ARGV[3])
local max_probes = tonumber(ARGV[4])
local lease = tonumber(ARGV[5])
local state = tonumber(h[4] or '0')
local gen = tonumber(h[5] or '0')
local open_until = tonumber(h[6] or '0')
local failures = tonumber(h[7] or '0')
local probes = tonumber(h[8] or '0')
local probe_ok = tonumber(h[9] or '0')
local lease_until = tonumber(h[10] or '0')
local function trip()
  state = 1; gen = gen + 1; open_until = now + recovery
  failures = 0; probes = 0; probe_ok = 0
end
local verdict = 'view'
if op == 'acquire' then
  if state == 1 and now >= open_until then
    state = 2; gen = gen + 1; probes = 0; probe_ok = 0
  end
  if state == 2 and probes >= max_probes and now >= lease_until then
    gen = gen + 1; probes = 0; probe_ok = 0
  end
  if state == 0 then
    verdict = 'closed'
  elseif state == 2 and probes < max_probes then
    probes = probes + 1; lease_until = now + lease; verdict = 'probe'
  else
    verdict = 'rejected'
  end
elseif op == 'failure' or op == 'success' or op == 'cancel' then
  if tonumber(ARGV[6]) ~= gen then
    verdict = 'stale'
  else
    verdict = 'recorded'
    if op == 'failure' then
      if state == 0 then
        failures = failures + 1
        if failures >= threshold then trip() end
      elseif state == 2 then
        trip()
      end
    elseif op == 'success' then
      if state == 0 then
        failures = 0
      elseif state == 2 then
        probes = math.max(probes - 1, 0); probe_ok = probe_ok + 1
        if probe_ok >= max_probes then
          state = 0; gen = gen + 1; failures = 0; probes = 0; probe_ok = 0
        end
      end
    elseif state == 2 then
      probes = math.max(probes - 1, 0)
    end
  end
elseif op == 'reset' then
  state = 0; gen = gen + 1; failures = 0; probes = 0; probe_ok = 0
end
local function n(x) return string.format('%.0f', x) end
redis.call('HSET', key, 'threshold', ARGV[2], 'recovery_us', ARGV[3], 'half_open', ARGV[4],
  'state', state, 'gen', n(gen), 'open_until', n(open_until), 'failures', failures,
  'probes', probes, 'probe_ok', probe_ok, 'lease_until', n(lease_until))
redis.call('PEXPIRE', key, ARGV[7])
-- Slots whose lease ran out count as free: the next `acquire` takes them
-- back (a view that showed them taken would never send one).
local shown = probes
if state == 2 and now >= lease_until then shown = 0 end
return {verdict, state, n(gen), n(open_until), n(now), failures, shown}
";

/// What the script decided about an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    View,
    Closed,
    Probe,
    Rejected,
    Recorded,
    Stale,
}

/// The shared state as the server saw it at `now`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Remote {
    pub(super) state: CircuitState,
    pub(super) generation: u64,
    /// How long until the open period ends, from the server's `now`.
    pub(super) open_for: Duration,
    /// The server's clock, microseconds (orders views from different round
    /// trips).
    pub(super) now_us: u64,
    pub(super) failures: u32,
    pub(super) probes: u32,
}

/// A parsed reply.
#[derive(Debug)]
pub(super) enum Reply {
    Answer(Verdict, Remote),
    /// The key holds another configuration: threshold, recovery_us,
    /// half_open as stored.
    Conflict([String; 3]),
}

pub(super) fn parse(reply: &[String]) -> Option<Reply> {
    let field = |i: usize| reply.get(i).map(String::as_str);
    let verdict = match field(0)? {
        "conflict" => {
            let text = |i: usize| field(i).unwrap_or_default().to_owned();
            return Some(Reply::Conflict([text(1), text(2), text(3)]));
        }
        "view" => Verdict::View,
        "closed" => Verdict::Closed,
        "probe" => Verdict::Probe,
        "rejected" => Verdict::Rejected,
        "recorded" => Verdict::Recorded,
        "stale" => Verdict::Stale,
        _ => return None,
    };
    let number = |i: usize| field(i).and_then(|s| s.parse::<u64>().ok());
    let state = match number(1)? {
        0 => CircuitState::Closed,
        1 => CircuitState::Open,
        2 => CircuitState::HalfOpen,
        _ => return None,
    };
    let open_until = number(3)?;
    let now_us = number(4)?;
    Some(Reply::Answer(
        verdict,
        Remote {
            state,
            generation: number(2)?,
            open_for: Duration::from_micros(open_until.saturating_sub(now_us)),
            now_us,
            failures: u32::try_from(number(5)?).unwrap_or(u32::MAX),
            probes: u32::try_from(number(6)?).unwrap_or(u32::MAX),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn replies_parse_into_views() {
        let Some(Reply::Answer(verdict, remote)) =
            parse(&strings(&["probe", "2", "7", "1000", "400", "0", "1"]))
        else {
            panic!("not an answer");
        };
        assert_eq!(verdict, Verdict::Probe);
        assert_eq!(remote.state, CircuitState::HalfOpen);
        assert_eq!(remote.generation, 7);
        assert_eq!(remote.open_for, Duration::from_micros(600));
        assert_eq!(remote.probes, 1);
    }

    #[test]
    fn malformed_replies_are_refused() {
        assert!(parse(&strings(&["probe", "9", "7", "1", "1", "0", "0"])).is_none());
        assert!(parse(&strings(&["what"])).is_none());
        assert!(parse(&strings(&["view", "0"])).is_none());
        assert!(matches!(
            parse(&strings(&["conflict", "3", "1000", "1"])),
            Some(Reply::Conflict(_))
        ));
    }
}

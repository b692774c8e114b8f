//! Script calls that can also go out in a pipeline: redis-rs's own
//! `ScriptInvocation` only runs alone, and a worker writes a whole batch of
//! compare-and-sets in one round trip.

use redis::aio::ConnectionLike;
use redis::{Cmd, ErrorKind, FromRedisValue, Pipeline, RedisResult, Script, ToRedisArgs};

/// A call of a Lua script being built: keys, then arguments.
pub(super) struct ScriptCall<'a> {
    script: &'a Script,
    keys: Vec<Vec<u8>>,
    args: Vec<Vec<u8>>,
}

impl<'a> ScriptCall<'a> {
    pub(super) fn new(script: &'a Script) -> Self {
        Self {
            script,
            keys: Vec::new(),
            args: Vec::new(),
        }
    }

    /// Adds `KEYS[n]`.
    pub(super) fn key<T: ToRedisArgs>(&mut self, key: T) -> &mut Self {
        key.write_redis_args(&mut self.keys);
        self
    }

    /// Adds `ARGV[n]`.
    pub(super) fn arg<T: ToRedisArgs>(&mut self, arg: T) -> &mut Self {
        arg.write_redis_args(&mut self.args);
        self
    }

    fn evalsha(&self) -> Cmd {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(self.script.get_hash()).arg(self.keys.len());
        for part in self.keys.iter().chain(&self.args) {
            cmd.arg(&part[..]);
        }
        cmd
    }

    /// Adds the call to `pipe`; see [`run_pipeline`] for sending it.
    pub(super) fn add_to(&self, pipe: &mut Pipeline) {
        pipe.add_command(self.evalsha());
    }

    /// Runs the call alone, loading the script first if Redis lost it.
    pub(super) async fn invoke<T: FromRedisValue>(
        &self,
        connection: &mut impl ConnectionLike,
    ) -> RedisResult<T> {
        let cmd = self.evalsha();
        match cmd.query_async(connection).await {
            Err(e) if e.kind() == ErrorKind::NoScriptError => {
                self.script.load_async(connection).await?;
                cmd.query_async(connection).await
            }
            other => other,
        }
    }
}

/// Sends a pipeline holding calls of `scripts`, loading them and sending it
/// again if Redis lost them (a restart, a flush). Redis refuses an EVALSHA
/// of an unknown script, so none of those ran; the others did, so all the
/// pipeline holds must be safe to repeat.
pub(super) async fn run_pipeline<T: FromRedisValue>(
    scripts: &[&Script],
    pipe: &Pipeline,
    connection: &mut impl ConnectionLike,
) -> RedisResult<T> {
    match pipe.query_async(connection).await {
        Err(e) if e.kind() == ErrorKind::NoScriptError => {
            for script in scripts {
                script.load_async(connection).await?;
            }
            pipe.query_async(connection).await
        }
        other => other,
    }
}

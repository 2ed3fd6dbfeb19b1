// Package lease makes fenced highly available on etcd: several replicas,
// one leader, nothing done twice.
//
// Election uses go.etcd.io/etcd/client/v3/concurrency with a session TTL
// (default 5 s). The leader key's create revision is the fencing token. A
// Leadership carries the token and a context that is cancelled the moment the
// session is lost, before another replica can be elected (the lease must
// expire first). Every write of the leader is a transaction that compares the
// leader key's create revision with the token, so a replica that was paused
// (SIGSTOP, a starved controller) and resumes with a stale token cannot write.
//
// Irreversible actions are written as intents (host, action, token, request
// id, time) under that guard before they run, and their outcomes after. A new
// leader lists intents without outcomes and reconciles them (for a power
// cycle: reads the BMC's power state) before it acts.
//
// Host records live under a versioned envelope ({"schema":1,…}) so a new
// leader resumes each host where the old one left it.
package lease

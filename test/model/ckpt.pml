/*
 * A model of ckpt's checkpoint, recovery and fencing protocol for spin.
 * proto/PROTOCOL.md §15 says what it checks; test/model/run-model.ts runs it.
 *
 * Configuration: two coordinator processes (one leads at a time through an
 * election on etcd; a deposed one may act on until it notices), one job of
 * three tasks on three workers, a source S (worker 0) -> an operator O
 * (worker 1) -> a sink K (worker 2), etcd as a set of variables changed only
 * in atomic steps (each etcd transaction is one compare-and-swap), the gRPC
 * session of each worker (FIFO both ways, may break), and NATS: the trigger
 * subject (to S) and the complete subject (to K), each FIFO, lossy, and not
 * ordered against each other or against the sessions; the data subjects
 * S->O and O->K, FIFO, records and barriers in band.
 *
 * What is abstracted, and why (to keep the state space small enough for an
 * exhaustive search):
 * - A record is its input position r (1..MAXREC); the operator forwards each
 *   record it counts; a task's state is a counter (S: the position read,
 *   O and K: records processed), so a consistent cut is "the three counters
 *   of a manifest are equal". The sink's staging is a bit mask of the
 *   records staged per checkpoint id.
 * - A snapshot is stored in a blob store (the arrays blob*), written once
 *   per task and id; an acknowledgement names it by (task, id), and the
 *   committed manifest by its id and epoch.
 * - One checkpoint pending at a time (maxConcurrent 1); ids are reserved
 *   in blocks of BLOCK. Restore is one step (RESTORING and READY merge:
 *   a trigger cannot arrive in the middle of a restore, so R1's hold of a
 *   trigger during a restore is not exercised; its READY half is).
 * - Not modelled: CheckpointAbort and Recover broadcasts (Recover is
 *   advisory, R2; an abort only releases work the model does not hold),
 *   declines, the SessionResult answers, heartbeats (a session that misses
 *   them is a broken session), data loss on the data subjects and the
 *   barrier's record count, savepoints, retention and garbage, standby
 *   workers, several pending checkpoints, unaligned snapshots.
 * - Timeouts: a pending checkpoint aborts only when nothing else can move
 *   (spin's `timeout`), which is when a fault lost what it waited for.
 * - Faults (at most MAXFAULTS in a run): a lost NATS control message, a
 *   broken session, a worker crash (its state and subscriptions lost), the
 *   leader's lease lost (the key deleted; the leader has not noticed), a
 *   coordinator crash.
 * - A worker attaches only to a coordinator that believes it leads and
 *   whose term is not below the highest term the worker has confirmed: it
 *   asks etcd for the leader again after a deposed leader's Welcome
 *   (src/worker-protocol/attach.ts). That keeps the model from looping on
 *   a deposed leader, which in the code notices within a lease TTL.
 *
 * Bad variants (compile-time switches), each must give a counterexample:
 *   NO_LEADER_GUARD  the commit transaction does not compare the leader key
 *   NO_EPOCH_GUARD   tasks take records and barriers of any epoch
 *   SINK_EARLY       the sink publishes a checkpoint's output at its snapshot
 *   NO_ID_FLOOR      a new leader takes ids from latest+1, not the id floor
 *   NO_ACK_ALL       the coordinator commits without the sink's acknowledgement
 *   EARLY_START      the StartCommand goes out once the source is ready, not every task
 *   NO_COMMIT        the coordinator never commits (liveness must fail)
 *
 * ROLLBACK_WINDOW is the coordinator's order of a recovery as it was before the model
 * found it wrong (the restart backoff's wait, then the abort and the epoch bump at once,
 * without waiting for a commit that began during the wait), with task failures as the
 * only faults: its counterexample shows a recovery entering its new epoch while a commit
 * is under way, where src/core/job-tracker.ts enterEpoch throws. The code now waits
 * for such commits (JobRollback.abortPending), which the rollback step's guard models.
 */

#ifndef MAXFAULTS
#define MAXFAULTS 2
#endif
#ifndef MAXID
#define MAXID 5 /* checkpoint ids 1 .. MAXID-1 */
#endif
#ifndef MAXREC
#define MAXREC 2 /* records the source's input holds */
#endif
#define BLOCK 2  /* ids reserved by one etcd write */
#define MAXEP 8  /* epochs 1 .. MAXEP-1 */
#define NW 3
#define NC 2
#define ALL 7
#define NOC 255 /* no coordinator */

/* worker phases: the tasks have not restored the worker's epoch, have restored it, or run (sources read) */
#define IDLE 0
#define READYP 1
#define RUN 2
/* session states of a worker */
#define NONE 0
#define WELCOMED 1
/* a coordinator's attempt (src/core/task-roster.ts JobAttempt) */
#define RESUMING 0
#define RESTORING 1
#define RUNNING 2

mtype = { READY, ACK, RESTORE, START, REC, BAR };

/* ---- etcd: changed only inside atomic steps, one per transaction ---- */
byte e_rev = 0;     /* the store's revision: create revisions are terms */
byte e_leader = 0;  /* create revision of the leader's election key; 0: none */
byte e_epoch = 1;   /* src/store/keys.ts epoch */
byte e_latest = 0;  /* latest committed checkpoint */
byte e_floor = 1;   /* id floor: every id below may have been used */
bool e_created = 0; /* the job's records exist (createJob) */
byte m_epoch[MAXID];/* the committed manifest of each id: its epoch; 0: none */

/* ---- the blob store: snapshot of (task, id), as count+1; 0: not written ---- */
byte blobS[MAXID];
byte blobO[MAXID];
byte blobK[MAXID];
byte blobKg[MAXID * MAXID]; /* the sink's pending groups in its snapshot of id: [id*MAXID + k] */

/* ---- channels ---- */
chan c2w[NW] = [3] of { mtype, byte, byte, byte }; /* session, coordinator -> worker */
chan w2c[NW] = [3] of { mtype, byte, byte };       /* session, worker -> coordinator */
chan trig = [2] of { byte, byte, byte };           /* NATS trigger subject to S: term, epoch, id */
chan cmpl = [2] of { byte, byte, byte };           /* NATS complete subject to K: term, epoch, id */
chan d01 = [4] of { mtype, byte, byte };           /* NATS data S->O: kind, epoch, record or id */
chan d12 = [4] of { mtype, byte, byte };           /* NATS data O->K */

/* ---- coordinators (arrays so that workers see who believes it leads) ---- */
bool cl[NC];     /* believes it leads */
byte ct[NC];     /* its term */
byte cep[NC];    /* the job's epoch as it knows it */
byte clat[NC];   /* latest committed, as it knows it */
byte cnext[NC];  /* next checkpoint id */
byte cresv[NC];  /* ids below are reserved */
byte catt[NC];   /* attempt */
byte crdy[NC];   /* tasks ready in cep */
byte cattm[NC];  /* tasks attached */
byte cdet[NC];   /* sessions that ended, not yet handled */
byte cpend[NC];  /* the pending checkpoint; 0: none */
byte cacked[NC]; /* tasks that acknowledged it */
bool ccommit[NC];/* its commit is under way */
byte crec[NC];   /* a recovery is under way (ROLLBACK_WINDOW: 1 asked, 2 backing off) */
byte ccompl[NC]; /* a committed id whose CheckpointComplete is still to be published */
byte ccomplEp[NC];
byte crow[NC];   /* recoveries in a row since the last commit (RestartBackoff), ROLLBACK_WINDOW only */

/* ---- workers ---- */
byte sc[NW];     /* the coordinator of the session; NOC: none */
byte wc[NW];     /* NONE, WELCOMED */
byte wep[NW];    /* epoch */
byte wph[NW];    /* IDLE, READYP, RUN */
byte wterm[NW];  /* confirmed term */
byte hT[NW];     /* a held control message of an unconfirmed term: term (0: none), epoch, id */
byte hE[NW];
byte hI[NW];
byte spos;       /* S: records read */
byte staken;     /* S: the last trigger taken in the epoch */
byte ocnt;       /* O: records counted */
byte kcnt;       /* K: records staged */
byte kcur;       /* K: records staged since the last seal (bit r-1) */
byte kgrp[MAXID];/* K: pending(k), sealed by snapshot k, not published yet */
byte kacked;     /* K: ids acknowledged in the epoch (bit id) */

/* ---- ghost state for the properties ---- */
byte g_faults = 0;
bool g_used[MAXID];   /* ids triggered by any coordinator */
byte g_hiUsed = 0;
byte g_rid[MAXEP];    /* the checkpoint restored in each epoch, +1; 0: none yet */
byte out[MAXREC + 1]; /* the stream: the message id (checkpoint) record r was published under */
byte outm[MAXID];     /* the stream: the records published under checkpoint k */
bool g_clean = 0;     /* a checkpoint committed since the last fault */
bool g_started = 0;   /* the leader's attempt runs: set by its StartCommand, reset when a leader loads the job or a recovery raises the epoch */
bool g_restoredCommitted = 0; /* some task restored a committed checkpoint */
byte g_commits = 0;

#define bit(w) (1 << (w))

#ifdef EARLY_START
#define ALL_READY(c) ((crdy[c] & 1) != 0 && cattm[c] == ALL)
#else
#define ALL_READY(c) (crdy[c] == ALL && cattm[c] == ALL)
#endif

/* Faults may happen while fewer than MAXFAULTS happened; in a liveness run only while
   the ids left are enough for a checkpoint after the fault (the worst case wastes the
   pending id and the rest of a reserved block), so that a run that cannot commit again
   for want of ids does not count as a liveness failure. */
#ifdef LIVENESS
#define FAULT_OK (g_faults < MAXFAULTS && g_hiUsed + BLOCK < MAXID)
#else
#define FAULT_OK (g_faults < MAXFAULTS)
#endif

#ifdef NO_LEADER_GUARD
#define LEADER_GUARD(c) (1)
#else
#define LEADER_GUARD(c) (e_leader == ct[c])
#endif

inline flushSession(w) {
  do
  :: nempty(c2w[w]) -> c2w[w]?_,_,_,_
  :: empty(c2w[w]) -> break
  od;
  do
  :: nempty(w2c[w]) -> w2c[w]?_,_,_
  :: empty(w2c[w]) -> break
  od
}

/* A session ends: the stream closes at both ends (src/coordinator/worker-sessions.ts
   WorkerSessions.close sees it; the worker reconnects, src/worker-protocol/attach.ts). */
inline breakSession(w) {
  if
  :: sc[w] != NOC ->
     cdet[sc[w]] = cdet[sc[w]] | bit(w);
     sc[w] = NOC;
     flushSession(w);
     wc[w] = NONE
  :: else -> skip
  fi
}

inline fault() {
  g_faults++;
  g_clean = 0
}

/* ------------------------------------------------------------------ */
/* Coordinator                                                         */
/* ------------------------------------------------------------------ */

/* src/server/leadership.ts Leadership (onDeposed) and src/coordinator/job-runtime.ts
   JobRuntime.stop: a deposed leader ends its sessions and drops the job's runtime;
   a CheckpointComplete already on its way may still be published. */
inline stepDown(c) {
  cl[c] = 0;
  for (sw : 0 .. NW - 1) {
    if
    :: sc[sw] == c -> breakSession(sw)
    :: else -> skip
    fi
  }
  sw = 0;
  cdet[c] = 0; cattm[c] = 0; crdy[c] = 0; cpend[c] = 0; cacked[c] = 0;
  ccommit[c] = 0; crec[c] = 0
}

/* Sends on a session only while it lasts (src/coordinator/sessions.ts Session.channel:
   a broken stream takes nothing). */
inline csend(c, w, m, a, b, d) {
  if
  :: sc[w] == c -> assert(nfull(c2w[w])); c2w[w]!m, a, b, d
  :: else -> skip
  fi
}

/* src/coordinator/attempt-control.ts AttemptControl.restore and command: the
   RestoreCommand of the recovery's checkpoint (the latest) in the job's epoch. */
inline sendRestore(c, w) {
  csend(c, w, RESTORE, cep[c], ct[c], clat[c])
}

/* src/coordinator/attempt-control.ts AttemptControl.ready and src/core/task-roster.ts
   markReady: the last task ready sends every session its StartCommand in the same
   step that turns the attempt to running. */
inline markReady(c, w) {
  if
  :: catt[c] != RUNNING ->
     crdy[c] = crdy[c] | bit(w);
     if
     :: ALL_READY(c) ->
        catt[c] = RUNNING;
        g_started = 1;
        for (v : 0 .. NW - 1) {
          if
          :: (cattm[c] & bit(v)) != 0 -> csend(c, v, START, cep[c], ct[c], 0)
          :: else -> skip
          fi
        }
        v = 0
     :: else -> skip
     fi
  :: else -> skip
  fi
}

/* src/coordinator/job-runtime.ts JobRuntime.abortAll: pending checkpoints abort,
   a commit under way finishes. */
inline abortPending(c) {
  if
  :: !ccommit[c] -> cpend[c] = 0; cacked[c] = 0
  :: else -> skip
  fi
}

/* src/coordinator/job-rollback.ts JobRollback.recover: joins the recovery under way. */
inline recover(c) {
  abortPending(c);
  if
  :: crec[c] == 0 -> crec[c] = 1
  :: else -> skip
  fi
}

/* A worker attaches to coordinator c with a hello naming epoch he, and handles the
   Welcome: one step here (the hello and the Welcome are the first two messages of a new
   stream, nothing can come between them on it). Coordinator side:
   src/coordinator/worker-sessions.ts WorkerSessions.open/attachTasks, the Welcome
   (src/coordinator/reply-encoding.ts welcomeReply), then
   src/coordinator/attempt-control.ts AttemptControl.onAttach: while restoring, the
   session gets the RestoreCommand; a new leader that is resuming takes a hello of the
   current epoch as ready; any other hello makes the job recover. Worker side
   (src/worker-protocol/session.ts WorkerSession): the Welcome confirms the term; it resumes when the
   Welcome names the hello's epoch, else enters the Welcome's epoch (PROTOCOL.md §4). */
inline attach(c, w, he) {
  sc[w] = c;
  cattm[c] = cattm[c] | bit(w);
  wc[w] = WELCOMED;
  if
  :: he != 0 && cep[c] == he -> skip
  :: else -> enterEpoch(w, cep[c])
  fi;
  confirmTerm(w, ct[c]);
  if
  :: catt[c] == RESTORING && !crec[c] -> sendRestore(c, w)
  :: catt[c] == RESUMING && he == cep[c] && !crec[c] -> markReady(c, w)
  :: else -> recover(c)
  fi
}

/* One message of worker w's session. */
inline serve(c, w) {
  w2c[w]?m, a, b;
  if
  :: m == READY ->
     /* src/coordinator/attempt-control.ts AttemptControl.ready: a report of another epoch is ignored. */
     if
     :: a == cep[c] && !crec[c] -> markReady(c, w)
     :: else -> skip
     fi
  :: m == ACK ->
     /* src/core/ack-rules.ts acceptAcks and src/coordinator/job-runtime.ts
        JobRuntime.acknowledge: the job's epoch, a pending checkpoint, then the
        commit is enqueued once every task acknowledged. */
     if
     :: a == cep[c] && b == cpend[c] && b != 0 && !ccommit[c] ->
        cacked[c] = cacked[c] | bit(w);
#ifdef NO_ACK_ALL
        if
        :: (cacked[c] & 3) == 3 -> ccommit[c] = 1
        :: else -> skip
        fi
#else
        if
        :: cacked[c] == ALL -> ccommit[c] = 1
        :: else -> skip
        fi
#endif
     :: else -> skip
     fi
  fi;
  m = 0; a = 0; b = 0
}

/* src/coordinator/job-rollback.ts JobRollback.rollBack from abortAll on: abort what is
   pending, raise the epoch in etcd (src/store/job-records.ts bumpEpoch, guarded by the
   leader key), enter the epoch (src/core/job-tracker.ts enterEpoch: attempt 'restoring')
   and send every session its restore (AttemptControl.restoreAll). */
inline rollBack(c) {
  abortPending(c);
  if
  :: e_leader == ct[c] ->
     e_epoch++;
     assert(e_epoch < MAXEP);
     /* src/core/job-tracker.ts enterEpoch throws while a checkpoint is pending: none
        may be, a commit under way neither. */
     assert(!ccommit[c]);
     cep[c] = e_epoch;
     catt[c] = RESTORING; crdy[c] = 0; crec[c] = 0; g_started = 0;
     for (w : 0 .. NW - 1) {
       if
       :: (cattm[c] & bit(w)) != 0 -> sendRestore(c, w)
       :: else -> skip
       fi
     }
     w = 0
  :: else -> stepDown(c)
  fi
}

proctype Coordinator(byte c) {
  mtype m;
  byte a, b, w, v, id, sw;
end:
  do
  /* src/server/leadership.ts Leadership #campaign (src/server/election.ts Candidacy):
     the key with the lowest create revision leads; its create revision is the term.
     src/coordinator/job-changes.ts and job-registry.ts: the new leader loads the job
     from etcd, 'restoring' when it creates it, else 'resuming'; src/core/job-tracker.ts:
     ids start at max(id floor, latest + 1) (src/core/id-allocator.ts). */
  :: atomic { !cl[c] && e_leader == 0 && ccompl[c] == 0 ->
       e_rev++; e_leader = e_rev; ct[c] = e_rev; cl[c] = 1;
       cep[c] = e_epoch; clat[c] = e_latest;
#ifdef NO_ID_FLOOR
       cnext[c] = e_latest + 1;
#else
       if
       :: e_floor > e_latest + 1 -> cnext[c] = e_floor
       :: else -> cnext[c] = e_latest + 1
       fi;
#endif
       cresv[c] = cnext[c];
       /* DESIGN: a new leader continues with ids above every id any earlier leader could have used. */
       assert(cnext[c] > g_hiUsed);
       if
       :: !e_created -> e_created = 1; catt[c] = RESTORING
       :: else -> catt[c] = RESUMING
       fi;
       cattm[c] = 0; crdy[c] = 0; cdet[c] = 0; cpend[c] = 0; cacked[c] = 0;
       ccommit[c] = 0; crec[c] = 0; g_started = 0; crow[c] = 0
     }

  /* src/server/leadership.ts: the leader steps down when its key is gone or its lease
     lost (watch, watchdog), at the latest when a fenced write is refused. */
  :: atomic { cl[c] && e_leader != ct[c] -> stepDown(c) }

  /* src/coordinator/worker-sessions.ts WorkerSessions.close: the session's tasks
     detach, pending checkpoints abort, and unless the job was restoring it recovers
     (src/coordinator/attempt-control.ts AttemptControl.onDetach). */
  :: atomic { cl[c] && cdet[c] != 0 ->
       if
       :: (cdet[c] & 1) != 0 -> w = 0
       :: (cdet[c] & 2) != 0 -> w = 1
       :: (cdet[c] & 4) != 0 -> w = 2
       fi;
       cdet[c] = cdet[c] & ~bit(w);
       if
       :: (cattm[c] & bit(w)) != 0 ->
          cattm[c] = cattm[c] & ~bit(w);
          crdy[c] = crdy[c] & ~bit(w);
          abortPending(c);
          if
          :: catt[c] != RESTORING -> recover(c)
          :: else -> skip
          fi
       :: else -> skip
       fi;
       w = 0
     }

  :: atomic { cl[c] && sc[0] == c && (cdet[c] & 1) == 0 && nempty(w2c[0]) -> serve(c, 0) }
  :: atomic { cl[c] && sc[1] == c && (cdet[c] & 2) == 0 && nempty(w2c[1]) -> serve(c, 1) }
  :: atomic { cl[c] && sc[2] == c && (cdet[c] & 4) == 0 && nempty(w2c[2]) -> serve(c, 2) }

  /* src/coordinator/job-runtime.ts JobRuntime.trigger and reserveIds
     (src/store/job-records.ts reserveIds, guarded by src/store/leader-guard.ts
     guardCompares), src/core/trigger-schedule.ts triggerRefusal (every task attached,
     the attempt running, no recovery), src/core/job-tracker.ts trigger (ids.take),
     src/coordinator/job-broadcasts.ts trigger: published to the sources. */
  :: atomic { cl[c] && catt[c] == RUNNING && !crec[c] && cpend[c] == 0 && !ccommit[c] &&
              cattm[c] == ALL && cnext[c] < MAXID ->
       if
       :: cnext[c] >= cresv[c] ->
          if
          :: e_leader == ct[c] ->
             if
             :: e_floor < cnext[c] + BLOCK -> e_floor = cnext[c] + BLOCK
             :: else -> skip
             fi;
             cresv[c] = cnext[c] + BLOCK
          :: else -> stepDown(c)
          fi
       :: else -> skip
       fi;
       if
       :: cl[c] ->
          id = cnext[c]; cnext[c]++;
          /* Checkpoint ids are never reused, and a coordinator's ids increase. */
          assert(!g_used[id]);
          g_used[id] = 1;
          if
          :: id > g_hiUsed -> g_hiUsed = id
          :: else -> skip
          fi;
          cpend[c] = id; cacked[c] = 0;
          if
          :: nfull(trig) -> trig!ct[c], cep[c], id
          :: full(trig) -> skip /* a slow consumer's message is dropped: the checkpoint times out */
          fi;
          id = 0
       :: else -> skip
       fi
     }

  /* src/coordinator/commit-pipeline.ts CommitPipeline.commit and src/store/commit.ts
     commitCheckpoint/buildCommitTxn: one transaction guarded by latest < id, the epoch,
     and the leader key's create revision (src/store/leader-guard.ts guardCompares);
     a refusal by the leader guard makes it step down (onLeadershipLost). */
  :: atomic { cl[c] && ccommit[c] ->
#ifdef NO_COMMIT
       cpend[c] = 0; cacked[c] = 0; ccommit[c] = 0
#else
       id = cpend[c];
       if
       :: e_latest < id && e_epoch == cep[c] && LEADER_GUARD(c) ->
          /* No commit without leadership: the commit's term is the lease holder's. */
          assert(e_leader == ct[c]);
          /* No torn manifest: every task acknowledged this checkpoint. */
          assert(cacked[c] == ALL);
          /* Consistent cut: every task's snapshot of id counts the same records. */
          assert(blobS[id] != 0 && blobS[id] == blobO[id] && blobO[id] == blobK[id]);
          /* latest is monotonic, committed ids strictly increase. */
          assert(id > e_latest);
          e_latest = id; m_epoch[id] = cep[c]; clat[c] = id;
          g_commits++; g_clean = 1; crow[c] = 0;
          ccompl[c] = id; ccomplEp[c] = cep[c];
          cpend[c] = 0; cacked[c] = 0; ccommit[c] = 0
       :: else ->
          cpend[c] = 0; cacked[c] = 0; ccommit[c] = 0;
          if
          :: e_leader != ct[c] -> stepDown(c)
          :: else -> skip
          fi
       fi;
       id = 0
#endif
     }

  /* src/coordinator/commit-pipeline.ts completeCommitted and
     src/coordinator/job-broadcasts.ts complete: CheckpointComplete on NATS. */
  :: atomic { ccompl[c] != 0 ->
       if
       :: nfull(cmpl) -> cmpl!ct[c], ccomplEp[c], ccompl[c]
       :: full(cmpl) -> skip
       fi;
       ccompl[c] = 0; ccomplEp[c] = 0
     }

  /* src/coordinator/job-rollback.ts JobRollback.rollBack: after the commits in flight,
     the rollback (inline rollBack) in one step. In the code the abort and the bump come
     after the restart backoff's wait (RestartBackoff.wait), during which the last
     acknowledgement of a pending checkpoint can start its commit: abortAll leaves it, and
     JobRollback.abortPending waits for it before the bump (the guard !ccommit[c] here).
     -DROLLBACK_WINDOW models the order before abortPending, which did not wait, with
     TaskFailure (the one recovery that does not abort first) as the faults. */
#ifdef ROLLBACK_WINDOW
  /* The code's order: after the commits queued so far, the restart backoff's wait when
     this recovery follows another without a commit between (RestartBackoff.wait; crec 2),
     then the rollback. Without a wait nothing comes between: the awaits resolve at once. */
  :: atomic { cl[c] && crec[c] == 1 && !ccommit[c] ->
       if
       :: crow[c] > 0 -> crow[c]++; crec[c] = 2
       :: else -> crow[c]++; rollBack(c)
       fi
     }
  :: atomic { cl[c] && crec[c] == 2 -> rollBack(c) }
#else
  :: atomic { cl[c] && crec[c] != 0 && !ccommit[c] -> rollBack(c) }
#endif

  /* src/coordinator/job-timer.ts JobTimer: a checkpoint past its deadline aborts; here only
     when nothing else can move, i.e. a fault lost what it waits for. */
  :: atomic { timeout && cl[c] && cpend[c] != 0 && !ccommit[c] -> cpend[c] = 0; cacked[c] = 0 }
  od
}

/* ------------------------------------------------------------------ */
/* Worker (SDK)                                                        */
/* ------------------------------------------------------------------ */

/* src/sdk/sink-jetstream.ts commit/publishGroup: pending(k) is published with message
   ids <job>/<task>/<k>/<index>; the stream drops an id it has. Exactly-once: a record
   is published under one id only, an id always with the same records, and only
   output of a committed checkpoint (one at or above k) is published. */
inline publish(k, mask) {
  assert(e_latest >= k);
  assert(outm[k] == 0 || outm[k] == mask);
  outm[k] = mask;
  for (r : 1 .. MAXREC) {
    if
    :: (mask & (1 << (r - 1))) != 0 -> assert(out[r] == 0 || out[r] == k); out[r] = k
    :: else -> skip
    fi
  }
  r = 0
}

/* src/sdk/sink-jetstream.ts onCheckpointComplete (SinkStaging.committable): every
   pending group up to the completed id. */
inline publishUpTo(upTo) {
  for (j : 1 .. MAXID - 1) {
    if
    :: j <= upTo && kgrp[j] != 0 -> publish(j, kgrp[j]); kgrp[j] = 0
    :: else -> skip
    fi
  }
  j = 0
}

/* The worker's epoch changes: src/sdk/worker-runtime.ts #enterEpoch (entering an epoch halts
   the tasks), src/bus/checkpoint-beliefs.ts enterEpoch, src/sdk/epoch-gate.ts entered. */
inline enterEpoch(w, e) {
  wep[w] = e;
  wph[w] = IDLE;
  if
  :: w == 2 -> kacked = 0
  :: else -> skip
  fi
}

/* The source takes a trigger: src/sdk/epoch-gate.ts EpochGate.offer (R1: a trigger of the
   current epoch implies the StartCommand), src/sdk/broadcasts.ts Broadcasts.trigger
   (src/bus/checkpoint-beliefs.ts takes: only above the last id taken in the epoch),
   PROTOCOL.md §7.1: snapshot, barrier on the output, acknowledge. */
inline onTrigger(e, id) {
  if
  :: e == wep[0] && wph[0] != IDLE ->
     if
     :: wph[0] == READYP -> wph[0] = RUN
     :: else -> skip
     fi;
     if
     :: id > staken ->
        staken = id;
        assert(blobS[id] == 0);
        blobS[id] = spos + 1;
        d01!BAR, wep[0], id;
        ack(0, id)
     :: else -> skip
     fi
  :: else -> skip /* another epoch, or not restored: dropped (src/bus/control-intake.ts) */
  fi
}

/* The sink counts a completion: src/bus/control-intake.ts ControlIntake (#complete: the
   current epoch, src/bus/checkpoint-beliefs.ts completeVerdict: an id it acknowledged),
   then src/sdk/sink-jetstream.ts onCheckpointComplete. */
inline onComplete(e, id) {
  if
  :: e == wep[2] && wph[2] != IDLE && (kacked & (1 << id)) != 0 ->
     kacked = kacked & ~(1 << id);
     publishUpTo(id)
  :: else -> skip
  fi
}

/* src/bus/term-gate.ts TermGate.confirm and src/bus/control-intake.ts confirmTerm: the
   session confirmed term t; a held message of exactly t is handled now, others dropped. */
inline confirmTerm(w, t) {
  if
  :: t > wterm[w] ->
     wterm[w] = t;
     if
     :: hT[w] == t ->
        hT[w] = 0;
        if
        :: w == 0 -> onTrigger(hE[w], hI[w])
        :: w == 2 -> onComplete(hE[w], hI[w])
        :: else -> skip
        fi
     :: else -> hT[w] = 0
     fi;
     hE[w] = 0; hI[w] = 0
  :: else -> skip
  fi
}

/* src/bus/term-gate.ts TermGate.offer: a lower term is dropped, the confirmed one handled,
   a higher one held (one slot here, the oldest evicted, as MAX_HELD_CONTROL_MESSAGES). */
inline offer(w, t, e, id) {
  if
  :: t < wterm[w] -> skip
  :: t == wterm[w] ->
     if
     :: w == 0 -> onTrigger(e, id)
     :: else -> onComplete(e, id)
     fi
  :: t > wterm[w] -> hT[w] = t; hE[w] = e; hI[w] = id
  fi
}

/* src/worker-protocol/ack-batcher.ts and ack-sender.ts: an acknowledgement goes on the
   session; with no session it waits and is dropped when its epoch ends (PROTOCOL.md
   §9.2): the session's end aborted its checkpoint anyway. */
inline ack(w, id) {
  if
  :: wc[w] == WELCOMED -> assert(nfull(w2c[w])); w2c[w]!ACK, wep[w], id
  :: else -> skip
  fi;
  if
  :: w == 2 -> kacked = kacked | (1 << id)
  :: else -> skip
  fi
}

/* A RestoreCommand: src/sdk/worker-runtime.ts #restore and src/sdk/state-commands.ts;
   each task fetches its part of the manifest from etcd and restores; the sink publishes
   what its snapshot staged (src/sdk/sink-jetstream.ts restore); TasksReady. */
inline restoreFrom(w, e, cid) {
  /* Recovery restores one cut: every task of an epoch restores the same checkpoint, a
     committed one. */
  assert(cid == 0 || m_epoch[cid] != 0);
  assert(g_rid[e] == 0 || g_rid[e] == cid + 1);
  g_rid[e] = cid + 1;
  if
  :: cid != 0 -> g_restoredCommitted = 1
  :: else -> skip
  fi;
  if
  :: w == 0 -> staken = 0; if :: cid == 0 -> spos = 0 :: else -> spos = blobS[cid] - 1 fi
  :: w == 1 -> if :: cid == 0 -> ocnt = 0 :: else -> ocnt = blobO[cid] - 1 fi
  :: w == 2 ->
     kcur = 0; kacked = 0;
     if
     :: cid == 0 -> kcnt = 0
     :: else -> kcnt = blobK[cid] - 1
     fi;
     for (j : 1 .. MAXID - 1) {
       if
       :: cid == 0 -> kgrp[j] = 0
       :: else -> kgrp[j] = blobKg[cid * MAXID + j]
       fi
     }
     j = 0;
     publishUpTo(MAXID - 1)
  fi;
  wph[w] = READYP;
  assert(nfull(w2c[w]));
  w2c[w]!READY, e, 0
}

/* A worker's crash: its process, state, session and subscriptions are gone; it starts
   again with a hello naming epoch 0 (PROTOCOL.md §5.5). */
inline crashWorker(w) {
  breakSession(w);
  wep[w] = 0; wph[w] = IDLE; wterm[w] = 0; hT[w] = 0; hE[w] = 0; hI[w] = 0;
  if
  :: w == 0 ->
     spos = 0; staken = 0;
     do
     :: nempty(trig) -> trig?_,_,_
     :: empty(trig) -> break
     od
  :: w == 1 ->
     ocnt = 0;
     do
     :: nempty(d01) -> d01?_,_,_
     :: empty(d01) -> break
     od
  :: w == 2 ->
     kcnt = 0; kcur = 0; kacked = 0;
     for (j : 1 .. MAXID - 1) { kgrp[j] = 0 }
     j = 0;
     do
     :: nempty(d12) -> d12?_,_,_
     :: empty(d12) -> break
     od;
     do
     :: nempty(cmpl) -> cmpl?_,_,_
     :: empty(cmpl) -> break
     od
  fi
}

#ifdef NO_EPOCH_GUARD
#define CURRENT(w, e) (1)
#else
#define CURRENT(w, e) ((e) == wep[w])
#endif

proctype Worker(byte w) {
  mtype m;
  byte a, b, d, j, r, v;
end:
  do
  /* src/worker-protocol/attach.ts awaitWelcome: attach to the leader (one that believes it leads and
     whose term is not below the confirmed one: a Welcome of a lower term would be closed
     at once, src/worker-protocol/session.ts WorkerSession), hello naming the epoch the tasks restored
     and run in, else 0 (PROTOCOL.md §5.5). */
  :: atomic { wc[w] == NONE && sc[w] == NOC &&
              (cl[0] && ct[0] >= wterm[w] && (cdet[0] & bit(w)) == 0 ||
               cl[1] && ct[1] >= wterm[w] && (cdet[1] & bit(w)) == 0) ->
       if
       :: wph[w] != IDLE -> a = wep[w]
       :: else -> a = 0
       fi;
       if
       :: cl[0] && ct[0] >= wterm[w] && (cdet[0] & bit(w)) == 0 -> attach(0, w, a)
       :: cl[1] && ct[1] >= wterm[w] && (cdet[1] & bit(w)) == 0 -> attach(1, w, a)
       fi;
       a = 0
     }

  /* Session messages, one at a time in arrival order (PROTOCOL.md §2.2, §4). */
  :: atomic { sc[w] != NOC && nempty(c2w[w]) ->
       c2w[w]?m, a, b, d;
       if
       :: m == RESTORE ->
          /* §4: RestoreCommand(e' >= e) restores; one of a lower epoch, or of a term below
             the confirmed one, is ignored. */
          if
          :: b < wterm[w] -> skip
          :: b >= wterm[w] && a >= wep[w] ->
             enterEpoch(w, a);
             restoreFrom(w, a, d);
             confirmTerm(w, b)
          :: b >= wterm[w] && a < wep[w] -> skip
          fi
       :: m == START ->
          /* src/sdk/epoch-gate.ts EpochGate.start: only for the current epoch, restored. */
          if
          :: b >= wterm[w] && a == wep[w] && wph[w] == READYP -> wph[w] = RUN; confirmTerm(w, b)
          :: else -> confirmTerm(w, b)
          fi
       fi;
       m = 0; a = 0; b = 0; d = 0
     }

  /* S: the source reads its input once started (src/sdk/source-lane.ts SourceLane). */
  :: atomic { w == 0 && wph[0] == RUN && spos < MAXREC && nfull(d01) ->
       spos++; d01!REC, wep[0], spos
     }

  /* S: a trigger from NATS (src/bus/control-intake.ts receive, term gate). */
  :: atomic { w == 0 && nempty(trig) && nfull(d01) -> trig?a, b, d; offer(0, a, b, d); a = 0; b = 0; d = 0 }

  /* O: records and barriers of S (src/sdk/edge-intake.ts, src/bus/barrier-check.ts
     checkBarrier: the current epoch only; src/sdk/alignment.ts: one input, so a barrier
     snapshots at once; PROTOCOL.md §7.3). Not restored: nothing is taken. */
  :: atomic { w == 1 && nempty(d01) && nfull(d12) ->
       d01?m, a, b;
       if
       :: wph[1] != IDLE && CURRENT(1, a) ->
          if
          :: m == REC -> ocnt++; d12!REC, wep[1], b
          :: m == BAR ->
             assert(blobO[b] == 0);
             blobO[b] = ocnt + 1;
             d12!BAR, wep[1], b;
             ack(1, b)
          fi
       :: else -> skip
       fi;
       m = 0; a = 0; b = 0
     }

  /* K: records are staged, a barrier seals them as pending(id) and snapshots
     (src/sdk/sink-jetstream.ts process/snapshot, src/sdk/sink-staging.ts seal). */
  :: atomic { w == 2 && nempty(d12) ->
       d12?m, a, b;
       if
       :: wph[2] != IDLE && CURRENT(2, a) ->
          if
          :: m == REC -> kcnt++; kcur = kcur | (1 << (b - 1))
          :: m == BAR ->
             if
             :: kcur != 0 -> kgrp[b] = kgrp[b] | kcur; kcur = 0
             :: else -> skip
             fi;
             assert(blobK[b] == 0);
             blobK[b] = kcnt + 1;
             for (j : 1 .. MAXID - 1) { blobKg[b * MAXID + j] = kgrp[j] }
             j = 0;
#ifdef SINK_EARLY
             publishUpTo(b);
#endif
             ack(2, b)
          fi
       :: else -> skip
       fi;
       m = 0; a = 0; b = 0
     }

  /* K: a completion from NATS (term gate, then onComplete). */
  :: atomic { w == 2 && nempty(cmpl) -> cmpl?a, b, d; offer(2, a, b, d); a = 0; b = 0; d = 0 }
  od
}

/* ------------------------------------------------------------------ */
/* Faults, at most MAXFAULTS in a run                                  */
/* ------------------------------------------------------------------ */
proctype Faults() {
  byte w, j, sw;
end:
  do
#ifndef ROLLBACK_WINDOW
  :: atomic { FAULT_OK && nempty(trig) -> trig?_,_,_; fault() }
  :: atomic { FAULT_OK && nempty(cmpl) -> cmpl?_,_,_; fault() }
  :: atomic { FAULT_OK && (sc[0] != NOC || sc[1] != NOC || sc[2] != NOC) ->
       if
       :: sc[0] != NOC -> w = 0
       :: sc[1] != NOC -> w = 1
       :: sc[2] != NOC -> w = 2
       fi;
       breakSession(w); fault(); w = 0
     }
  :: atomic { FAULT_OK ->
       if
       :: w = 0
       :: w = 1
       :: w = 2
       fi;
       crashWorker(w); fault(); w = 0
     }
#endif
#ifdef ROLLBACK_WINDOW
  /* A task fails and its worker reports it (TaskFailure): src/coordinator/worker-sessions.ts
     WorkerSessions.failed starts a recovery of the job's epoch without aborting first. */
  :: atomic { FAULT_OK && (sc[0] != NOC && wph[0] != IDLE || sc[1] != NOC && wph[1] != IDLE ||
                           sc[2] != NOC && wph[2] != IDLE) ->
       if
       :: sc[0] != NOC && wph[0] != IDLE -> w = 0
       :: sc[1] != NOC && wph[1] != IDLE -> w = 1
       :: sc[2] != NOC && wph[2] != IDLE -> w = 2
       fi;
       if
       :: cl[sc[w]] && wep[w] == cep[sc[w]] && crec[sc[w]] == 0 -> crec[sc[w]] = 1
       :: else -> skip
       fi;
       fault(); w = 0
     }
#else
  /* The leader's lease expires (etcd deletes its key); the leader has not noticed. */
  :: atomic { FAULT_OK && e_leader != 0 -> e_leader = 0; fault() }
  /* A coordinator crashes: its lease goes with it, its sessions end. */
  :: atomic { FAULT_OK && (cl[0] || cl[1]) ->
       if
       :: cl[0] -> w = 0
       :: cl[1] -> w = 1
       fi;
       if
       :: e_leader == ct[w] -> e_leader = 0
       :: else -> skip
       fi;
       stepDown(w); ccompl[w] = 0; ccomplEp[w] = 0; fault(); w = 0
     }
#endif
  od
}

init {
  atomic {
    sc[0] = NOC; sc[1] = NOC; sc[2] = NOC;
    run Faults();
    run Coordinator(0);
    run Coordinator(1);
    run Worker(0);
    run Worker(1);
    run Worker(2)
  }
}

/* Liveness: with no more faults, a checkpoint eventually commits (a commit after the
   last fault) and a recovery eventually ends (the job runs again, every task ready,
   after the last fault or recovery). Checked with -DLIVENESS (faults only while ids
   are left for a checkpoint after them). Every run of the model is finite apart from
   the stuttering of its final state (ids, records, epochs and faults are bounded and
   nothing else repeats), so weak fairness (pan -f) does not change the verdict; the
   runner leaves it off for speed and turns it on with --fair. */
ltl live { (<> [] g_clean) && (<> [] g_started) }
/* Reachability probes: each must be violated, so that the safety properties are
   not vacuous (a commit, and a restore of a committed checkpoint, happen). */
ltl reach_commit { [] (g_commits == 0) }
ltl reach_restore { [] !g_restoredCommitted }

package pool

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// supervise keeps slot s filled until the pool closes, starting with pr.
func (p *Pool) supervise(s *slot, pr *proc) {
	delay := p.cfg.RestartBackoff
	for {
		p.setSlot(s, pr, "ready")
		select {
		case <-pr.dead:
		case <-pr.reader.Failed(): // it stopped reading its slab packets
			pr.kill(fmt.Errorf("%w: %w", errDied, pr.reader.Err()))
		case <-p.ctx.Done():
			pr.stop(errStopping, 0) // EOF on its socket: the worker exits by itself
			select {
			case <-pr.reaped:
			case <-p.hard:
				pr.signal(unix.SIGKILL)
				<-pr.reaped
			}
			<-pr.done
			p.retire(s, pr)
			p.setSlot(s, nil, "stopped")
			return
		}
		<-pr.done
		p.retire(s, pr)
		for {
			if p.ctx.Err() != nil {
				p.setSlot(s, nil, "stopped")
				return
			}
			if wait := p.intensity(s, &delay); wait > 0 {
				p.setSlot(s, nil, "backoff")
				p.cfg.Log.Warn().Int("slot", s.index).Dur("wait", wait).Msg("worker restarts too often; waiting")
				t := time.NewTimer(wait)
				select {
				case <-t.C:
				case <-p.ctx.Done():
					t.Stop()
					continue
				}
			}
			p.setSlot(s, nil, "starting")
			next, err := p.spawn(s.index)
			if err == nil {
				pr = next
				break
			}
			p.cfg.Log.Error().Err(err).Int("slot", s.index).Msg("worker failed to start")
		}
	}
}

// intensity records a start of slot s and returns how long to wait before
// it: zero while the slot restarted at most MaxRestarts times within
// RestartWindow, then a delay that doubles up to MaxRestartBackoff.
func (p *Pool) intensity(s *slot, delay *time.Duration) time.Duration {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	s.restarts++
	keep := s.starts[:0]
	for _, t := range s.starts {
		if now.Sub(t) < p.cfg.RestartWindow {
			keep = append(keep, t)
		}
	}
	s.starts = append(keep, now)
	if len(s.starts) <= p.cfg.MaxRestarts {
		*delay = p.cfg.RestartBackoff
		return 0
	}
	d := *delay
	*delay = min(2*d, p.cfg.MaxRestartBackoff)
	return d
}

func (p *Pool) setSlot(s *slot, pr *proc, state string) {
	p.mu.Lock()
	s.cur, s.state = pr, state
	p.mu.Unlock()
	p.changed()
}

// retire moves a dead worker's count into its slot.
func (p *Pool) retire(s *slot, pr *proc) {
	p.mu.Lock()
	s.done += pr.processed.Load()
	if s.cur == pr {
		s.cur = nil
	}
	p.mu.Unlock()
}

// heartbeat pings every worker each Heartbeat and kills one that has been
// silent for HeartbeatTimeout of the supervisor's own running time: when
// a tick comes late (the supervisor was stopped, SIGSTOP or a suspended
// machine, or starved), the delay is not counted as the workers' silence,
// since they were not pinged meanwhile and their Pongs were not read.
func (p *Pool) heartbeat() {
	t := time.NewTicker(p.cfg.Heartbeat)
	defer t.Stop()
	var seq uint64
	last := time.Now()
	for {
		select {
		case <-t.C:
		case <-p.ctx.Done():
			return
		}
		seq++
		p.mu.Lock()
		var live []*proc
		for _, s := range p.slots {
			if s.cur != nil {
				live = append(live, s.cur)
			}
		}
		p.mu.Unlock()
		tick := time.Now()
		stall := tick.Sub(last) - p.cfg.Heartbeat // monotonic: the time this loop could not run
		last = tick
		now := tick.UnixNano()
		for _, pr := range live {
			if stall > 0 {
				forgive(pr, stall, now)
			}
			if silent := time.Duration(now - pr.lastSeen.Load()); silent > p.cfg.HeartbeatTimeout {
				pr.terminate(fmt.Errorf("%w: no heartbeat for %s", errHung, silent.Round(time.Millisecond)), p.cfg.KillGrace)
				continue
			}
			sendPing(pr, seq)
			p.lateWake(pr, tick)
		}
	}
}

// lateWake wakes pr's ring reader when its request ring has owed it a
// wake-up for at least a heartbeat: dispatches published without a wake
// (TryDispatchFunc with a Wakes) whose caller never called Wake. Such a
// dispatch would wait in the ring until its deadline, and its worker
// would be killed as hung; woken here it is late by about two heartbeats
// instead, and the error log and LateWakes say that a wake-up was lost.
// The time is the tick's own: ticks that a stalled loop receives late
// come close together, and a debt seen at both is not a heartbeat old.
func (p *Pool) lateWake(pr *proc, now time.Time) {
	owed := pr.owed()
	if owed == 0 || owed != pr.owedSeen {
		pr.owedSeen, pr.owedSince = owed, now
		return
	}
	if now.Sub(pr.owedSince) < p.cfg.Heartbeat {
		return
	}
	pr.owedSeen = 0
	pr.payLate(owed, "a heartbeat")
}

// owed is the request record pr's ring owes a wake-up for
// (ring.Shared.Owed), 0 for none or without rings.
func (pr *proc) owed() uint64 {
	if out := pr.requestRing(); out != nil {
		return out.Owed()
	}
	return 0
}

// payLate wakes pr's ring reader, whose request ring has owed it a
// wake-up for record owed since a look long enough before (found by
// whom), unless another look paid that debt meanwhile; it counts and
// logs what it paid: a lost wake-up, a bug in the caller of
// TryDispatchFunc. It reports whether it paid.
func (pr *proc) payLate(owed uint64, by string) bool {
	out := pr.requestRing()
	if out == nil || !out.ClaimOwed(owed) {
		return false // paid meanwhile, by its producer or another look
	}
	// Counted before the wake: the dispatches it frees may end at once.
	pr.pool.lateWakes.Add(1)
	pr.log.Error().Uint64("record", owed).Str("found_by", by).
		Msg("worker woken late: its request ring owed it a wake-up (a lost wake-up in the supervisor: please report it)")
	out.Wake()
	return true
}

// forgive moves pr's last sign of life forward by stall (not past now):
// silence while the supervisor itself did not run is not the worker's.
func forgive(pr *proc, stall time.Duration, now int64) {
	for {
		seen := pr.lastSeen.Load()
		if pr.lastSeen.CompareAndSwap(seen, min(seen+int64(stall), now)) {
			return
		}
	}
}

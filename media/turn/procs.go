package turn

import (
	"context"
	"log/slog"
	"runtime"
	"syscall"
	"time"
)

// Procs adapts GOMAXPROCS of a process that mostly relays. With several Ps
// and little load, Go wakes idle threads to steal each newly readable relay
// goroutine, which costs more context switches than the relaying itself; a
// single P serves anything up to about one busy core with far less CPU per
// datagram. Procs therefore runs one P while the process uses less than
// ScaleUp of a core and all of them (the SO_REUSEPORT sockets then spread
// over every core) once it uses more; it goes back to one P after a while
// under ScaleDown. It changes process-wide state: only a process whose main
// job is relaying (meeting turn) should run it, which Config.AdaptiveProcs
// does.
type Procs struct {
	Max       int           // the most Ps, e.g. runtime.NumCPU()
	ScaleUp   float64       // cores of CPU above which all Ps run
	ScaleDown float64       // cores of CPU below which one P runs again
	Interval  time.Duration // how often usage is sampled
	Calm      int           // samples under ScaleDown before going back to one P
	Logger    *slog.Logger
}

// DefaultProcs returns the policy `meeting turn` runs.
func DefaultProcs(log *slog.Logger) Procs {
	return Procs{Max: runtime.NumCPU(), ScaleUp: 0.7, ScaleDown: 0.35, Interval: time.Second, Calm: 10, Logger: log}
}

// Run adapts GOMAXPROCS until ctx ends, then restores Max.
func (p Procs) Run(ctx context.Context) {
	if p.Max <= 1 {
		return
	}
	defer runtime.GOMAXPROCS(p.Max)
	runtime.GOMAXPROCS(1)
	current := 1
	calm := 0
	lastCPU, lastWall := cpuTime(), time.Now()
	tick := time.NewTicker(p.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		cpu, wall := cpuTime(), time.Now()
		cores := (cpu - lastCPU).Seconds() / wall.Sub(lastWall).Seconds()
		lastCPU, lastWall = cpu, wall
		next, c := p.decide(current, calm, cores)
		calm = c
		if next == current {
			continue
		}
		current = next
		runtime.GOMAXPROCS(current)
		p.Logger.Debug("turn GOMAXPROCS changed", "procs", current, "cpu_cores", cores)
	}
}

// cpuTime is the user plus system CPU time the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// decide returns the Ps to run and the new count of calm samples, given the
// Ps running, the calm samples so far and the cores used in the last sample.
func (p Procs) decide(current, calm int, cores float64) (int, int) {
	switch {
	case current == 1 && cores > p.ScaleUp:
		return p.Max, 0
	case current > 1 && cores < p.ScaleDown:
		if calm+1 < p.Calm {
			return current, calm + 1
		}
		return 1, 0
	}
	return current, 0
}

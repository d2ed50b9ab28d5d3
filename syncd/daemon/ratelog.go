package daemon

import (
	"log/slog"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// rateLog logs at most one line a second per key, reporting how many it
// suppressed: a flood of forged datagrams must not flood the log.
type rateLog struct {
	log *slog.Logger
	now func() time.Time // time.Now; tests move it

	mu   sync.Mutex
	keys map[string]*rateKey
}

type rateKey struct {
	lim        *rate.Limiter
	suppressed int
}

func newRateLog(log *slog.Logger) *rateLog {
	return &rateLog{log: log, now: time.Now, keys: map[string]*rateKey{}}
}

// warn logs msg at warning level unless key logged within the last second.
func (r *rateLog) warn(key, msg string, args ...any) {
	r.mu.Lock()
	k, ok := r.keys[key]
	if !ok {
		k = &rateKey{lim: rate.NewLimiter(rate.Every(time.Second), 1)}
		r.keys[key] = k
	}
	if !k.lim.AllowN(r.now(), 1) {
		k.suppressed++
		r.mu.Unlock()
		return
	}
	supp := k.suppressed
	k.suppressed = 0
	r.mu.Unlock()
	r.log.Warn(msg, append(args, "suppressed", supp)...)
}

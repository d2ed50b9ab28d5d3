package node

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// maxLogString is how much of a string a client or peer controls (an id,
// a member name) goes into a log line or an error: enough to recognise it;
// the counters carry the rest of the story.
const maxLogString = 64

// clip shortens s, which a client or peer controls, to maxLogString bytes
// and says how long it was.
func clip(s string) string {
	if len(s) <= maxLogString {
		return s
	}
	return fmt.Sprintf("%s...(%d bytes)", strings.ToValidUTF8(s[:maxLogString], ""), len(s))
}

// refusalLog logs refused or malformed input (a request without
// credentials, a member the delegates refuse) at most once a second per
// reason after a short burst, with the number of lines it suppressed in
// between: a flood of bad input must not flood the log. Reasons are names
// the code chooses, never input, so the set stays small.
type refusalLog struct {
	log *slog.Logger

	mu      sync.Mutex
	reasons map[string]*throttle
}

type throttle struct {
	lim        *rate.Limiter
	suppressed int
}

// refusalBurst lines of one reason pass at once before the limit of one a
// second applies: an operator's few mistakes are all logged.
const refusalBurst = 3

func newRefusalLog(log *slog.Logger) *refusalLog {
	return &refusalLog{log: log, reasons: map[string]*throttle{}}
}

// logf logs msg at level lvl unless reason has used up its lines.
func (r *refusalLog) logf(lvl slog.Level, reason, msg string, args ...any) {
	if !r.log.Enabled(context.Background(), lvl) {
		return
	}
	r.mu.Lock()
	t, ok := r.reasons[reason]
	if !ok {
		t = &throttle{lim: rate.NewLimiter(rate.Every(time.Second), refusalBurst)}
		r.reasons[reason] = t
	}
	if !t.lim.Allow() {
		t.suppressed++
		r.mu.Unlock()
		return
	}
	supp := t.suppressed
	t.suppressed = 0
	r.mu.Unlock()
	if supp > 0 {
		args = append(args, "suppressed", supp)
	}
	r.log.Log(context.Background(), lvl, msg, append(args, "reason", reason)...)
}

// warn logs at warning level; see logf.
func (r *refusalLog) warn(reason, msg string, args ...any) {
	r.logf(slog.LevelWarn, reason, msg, args...)
}

package lab

import (
	"encoding/json"
	"slices"
	"time"
)

// Result is one scenario's JSON line.
type Result struct {
	Scenario    string  `json:"scenario"`
	Mode        Mode    `json:"mode"`
	Connections int     `json:"connections"`
	Lost        int     `json:"lost"`
	StallP50    float64 `json:"stall_ms_p50"`
	StallP99    float64 `json:"stall_ms_p99"`
	FailoverMS  float64 `json:"failover_ms"`
	// DetectMS is, in crash scenarios, when a survivor's saru first
	// listed the victim as dead: memberlist's part of failover_ms.
	DetectMS float64 `json:"detect_ms,omitempty"`
	// Moved counts the connections whose director changed during the
	// scenario: the ones whose survival the scenario proves.
	Moved int `json:"moved"`
	// Flapped is set when saru's membership changed before the scenario
	// acted (a live director was declared dead): the host starved the lab
	// and the numbers say more about the host than about saru.
	Flapped bool `json:"flapped,omitempty"`
	// Detail says what was measured and how, in a few words.
	Detail string `json:"detail,omitempty"`
	// Error names what is missing or broken; the numbers are then
	// whatever could be measured before it (often zero).
	Error string `json:"error,omitempty"`
	// Seconds is the scenario's wall time.
	Seconds float64 `json:"seconds"`
}

// JSON is the result's line.
func (r Result) JSON() string {
	b, _ := json.Marshal(r)
	return string(b)
}

// ms converts a duration to milliseconds with 0.1 ms precision.
func ms(d time.Duration) float64 {
	return float64(d.Round(100*time.Microsecond)) / float64(time.Millisecond)
}

// Percentile returns the p-th percentile (0..100) of ds by the nearest-rank
// method; 0 for none.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(p/100*float64(len(s)) + 0.999999999)
	if rank < 1 {
		rank = 1
	}
	if rank > len(s) {
		rank = len(s)
	}
	return s[rank-1]
}

// Outcome summarises stream states at the end of a scenario: a
// connection is lost when it failed, or when a message has waited for its
// echo longer than lossAfter; stalls are over the connections that
// survived.
func Outcome(states []StreamState, lossAfter time.Duration) (lost int, p50, p99 time.Duration) {
	var stalls []time.Duration
	for _, s := range states {
		if s.Err != nil || s.Waiting > lossAfter {
			lost++
			continue
		}
		stalls = append(stalls, s.Stall)
	}
	return lost, Percentile(stalls, 50), Percentile(stalls, 99)
}

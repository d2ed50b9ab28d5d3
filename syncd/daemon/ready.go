package daemon

import "time"

// WaitReady blocks until the daemon reports its snapshot complete or done
// is closed; it reports whether the daemon became ready.
func (d *Daemon) WaitReady(done <-chan struct{}) bool {
	for {
		if d.Status().Ready {
			return true
		}
		select {
		case <-done:
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
}

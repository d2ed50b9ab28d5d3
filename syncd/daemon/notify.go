package daemon

import (
	"fmt"
	"net"
	"os"
	"time"
)

// Notify sends a systemd sd_notify state ("READY=1", "STOPPING=1", ...)
// when the service runs under systemd with Type=notify; otherwise it does
// nothing.
func Notify(state string) error {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	if path[0] == '@' {
		path = "\x00" + path[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify %q: %w", state, err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify %q: %w", state, err)
	}
	return nil
}

// WaitReady blocks until the node reports its snapshot complete or done is
// closed; it reports whether the node became ready.
func (n *Node) WaitReady(done <-chan struct{}) bool {
	for {
		if n.Status().Ready {
			return true
		}
		select {
		case <-done:
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
}

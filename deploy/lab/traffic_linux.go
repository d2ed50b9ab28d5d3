package lab

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// dialIn dials TCP from inside the namespace.
func dialIn(ctx context.Context, ns, addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := inNS(ns, func() error {
		d := net.Dialer{Timeout: timeout}
		var err error
		c, err = d.DialContext(ctx, "tcp4", addr)
		return err
	})
	return c, err
}

// listenIn listens on TCP inside the namespace.
func listenIn(ns, addr string) (net.Listener, error) {
	var ln net.Listener
	err := inNS(ns, func() error {
		var err error
		ln, err = net.Listen("tcp4", addr)
		return err
	})
	return ln, err
}

// StartServers starts the HTTP and the stream echo service on every real
// server.
func (l *Lab) StartServers() error {
	for i, s := range l.Servers {
		name := fmt.Sprintf("r%d", i+1)
		hl, err := listenIn(s.NS, ":"+strconv.Itoa(HTTPPort))
		if err != nil {
			return fmt.Errorf("real server %s http: %w", name, err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			fmt.Fprintf(w, "%s %s\n", name, r.RemoteAddr)
		}), ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(hl)
		l.onClose(func() { srv.Close() })

		sl, err := listenIn(s.NS, ":"+strconv.Itoa(StreamPort))
		if err != nil {
			return fmt.Errorf("real server %s stream: %w", name, err)
		}
		var mu sync.Mutex
		conns := map[net.Conn]struct{}{}
		go func() {
			for {
				c, err := sl.Accept()
				if err != nil {
					return
				}
				mu.Lock()
				conns[c] = struct{}{}
				mu.Unlock()
				go func() {
					_, _ = io.Copy(c, c) // echo
					c.Close()
					mu.Lock()
					delete(conns, c)
					mu.Unlock()
				}()
			}
		}()
		l.onClose(func() {
			sl.Close()
			mu.Lock()
			for c := range conns {
				c.Close()
			}
			mu.Unlock()
		})
	}
	return nil
}

// HTTPGet makes one HTTP request to the VIP from the client namespace and
// returns the client's local port and the answering real server's name.
func HTTPGet(ctx context.Context, ns string, timeout time.Duration) (port int, server string, err error) {
	c, err := dialIn(ctx, ns, net.JoinHostPort(VIP.String(), strconv.Itoa(HTTPPort)), timeout)
	if err != nil {
		return 0, "", err
	}
	defer c.Close()
	port = c.LocalAddr().(*net.TCPAddr).Port
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: vip\r\nConnection: close\r\n\r\n"); err != nil {
		return port, "", err
	}
	b, err := io.ReadAll(c)
	if err != nil {
		return port, "", err
	}
	resp := string(b)
	var body string
	for i := 0; i+3 < len(resp); i++ {
		if resp[i:i+4] == "\r\n\r\n" {
			body = resp[i+4:]
			break
		}
	}
	if len(resp) < 12 || resp[9:12] != "200" {
		return port, "", fmt.Errorf("http: unexpected response %q", firstLine(resp))
	}
	var name string
	fmt.Sscanf(body, "%s", &name)
	return port, name, nil
}

func firstLine(s string) string {
	for i := range s {
		if s[i] == '\r' || s[i] == '\n' {
			return s[:i]
		}
	}
	return s
}

// Stream is one long-lived connection: it sends a sequence number and its
// send time every interval, the real server echoes them, and each echo
// tells how long that message waited.
type Stream struct {
	conn     net.Conn
	Port     int
	interval time.Duration

	mu      sync.Mutex
	pending []time.Time // send times of messages not yet echoed, oldest first
	maxWait time.Duration
	maxSent time.Time // when the message that waited maxWait was sent
	lastRx  time.Time
	echoes  uint64
	err     error
}

// Streams is a set of stream connections.
type Streams struct {
	// retries counts failed connection attempts that were retried while
	// opening.
	retries atomic.Int64
	list    []*Stream
	stop    chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
}

// OpenStreams opens n stream connections spread over the client
// namespaces, dialling with a little parallelism.
func (l *Lab) OpenStreams(ctx context.Context, n int, interval time.Duration) (*Streams, error) {
	ss := &Streams{stop: make(chan struct{})}
	l.onClose(ss.Close)
	addr := net.JoinHostPort(VIP.String(), strconv.Itoa(StreamPort))
	type res struct {
		s   *Stream
		err error
	}
	jobs := make(chan int)
	out := make(chan res)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				ns := l.Clients[i%len(l.Clients)]
				var c net.Conn
				var err error
				for try := 0; try < 3; try++ {
					if c, err = dialIn(ctx, ns, addr, 5*time.Second); err == nil {
						break
					}
					ss.retries.Add(1)
				}
				if err != nil {
					out <- res{err: fmt.Errorf("stream %d from %s: %w", i, ns, err)}
					continue
				}
				out <- res{s: &Stream{conn: c, Port: c.LocalAddr().(*net.TCPAddr).Port, interval: interval}}
			}
		}()
	}
	go func() {
		// Paced: a burst of connections starves the emulated kernel lab's
		// daemons, whose failure detectors then see ghosts.
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < n; i++ {
			<-tick.C
			jobs <- i
		}
		close(jobs)
		wg.Wait()
		close(out)
	}()
	var errs []error
	for r := range out {
		if r.err != nil {
			errs = append(errs, r.err)
			continue
		}
		ss.list = append(ss.list, r.s)
	}
	if len(errs) > 0 {
		ss.Close()
		return nil, fmt.Errorf("%d of %d stream connections failed: %w", len(errs), n, errs[0])
	}
	now := time.Now()
	for i, s := range ss.list {
		s.lastRx = now
		ss.wg.Add(2)
		offset := time.Duration(i) * interval / time.Duration(len(ss.list))
		go s.sendLoop(ss, offset)
		go s.recvLoop(ss)
	}
	return ss, nil
}

func (s *Stream) fail(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
}

// msgLen is a message: sequence number and send time (unix ns).
const msgLen = 16

func (s *Stream) sendLoop(ss *Streams, offset time.Duration) {
	defer ss.wg.Done()
	select {
	case <-time.After(offset):
	case <-ss.stop:
		return
	}
	t := time.NewTicker(s.interval)
	defer t.Stop()
	var buf [msgLen]byte
	for seq := uint64(1); ; seq++ {
		now := time.Now()
		binary.BigEndian.PutUint64(buf[:8], seq)
		binary.BigEndian.PutUint64(buf[8:], uint64(now.UnixNano()))
		s.mu.Lock()
		s.pending = append(s.pending, now)
		s.mu.Unlock()
		_ = s.conn.SetWriteDeadline(now.Add(60 * time.Second))
		if _, err := s.conn.Write(buf[:]); err != nil {
			select {
			case <-ss.stop:
			default:
				s.fail(fmt.Errorf("write: %w", err))
			}
			return
		}
		select {
		case <-t.C:
		case <-ss.stop:
			return
		}
	}
}

func (s *Stream) recvLoop(ss *Streams) {
	defer ss.wg.Done()
	var buf [msgLen]byte
	var want uint64 = 1
	for {
		if _, err := io.ReadFull(s.conn, buf[:]); err != nil {
			select {
			case <-ss.stop:
			default:
				s.fail(fmt.Errorf("read: %w", err))
			}
			return
		}
		now := time.Now()
		got := binary.BigEndian.Uint64(buf[:8])
		if got != want {
			s.fail(fmt.Errorf("echo out of order: got %d, want %d", got, want))
			return
		}
		want++
		wait := now.Sub(time.Unix(0, int64(binary.BigEndian.Uint64(buf[8:]))))
		s.mu.Lock()
		if wait > s.maxWait {
			s.maxWait = wait
			s.maxSent = now.Add(-wait)
		}
		if len(s.pending) > 0 {
			s.pending = s.pending[1:]
		}
		s.lastRx = now
		s.echoes++
		s.mu.Unlock()
	}
}

// Len is the number of connections.
func (ss *Streams) Len() int { return len(ss.list) }

// ResetWindow starts a new measurement window: stalls are measured from
// now.
func (ss *Streams) ResetWindow() {
	for _, s := range ss.list {
		s.mu.Lock()
		s.maxWait = 0
		s.mu.Unlock()
	}
}

// StreamState is one connection's measurement.
type StreamState struct {
	Port int
	// Stall is the longest a message has waited for its echo in the
	// window, including one still waiting.
	Stall time.Duration
	// Waiting is how long the oldest message not yet echoed has waited
	// (0: none).
	Waiting time.Duration
	Echoes  uint64
	Err     error
}

// Snapshot reports every connection's state now.
func (ss *Streams) Snapshot() []StreamState {
	now := time.Now()
	out := make([]StreamState, len(ss.list))
	for i, s := range ss.list {
		s.mu.Lock()
		st := StreamState{Port: s.Port, Stall: s.maxWait, Echoes: s.echoes, Err: s.err}
		if len(s.pending) > 0 {
			st.Waiting = now.Sub(s.pending[0])
			if st.Waiting > st.Stall {
				st.Stall = st.Waiting
			}
		}
		out[i] = st
		s.mu.Unlock()
	}
	return out
}

// Healthy counts connections without error whose oldest unanswered
// message has waited at most recent and that have had an echo.
func (ss *Streams) Healthy(recent time.Duration) int {
	n := 0
	for _, st := range ss.Snapshot() {
		if st.Err == nil && st.Waiting <= recent && st.Echoes > 0 {
			n++
		}
	}
	return n
}

// WaitHealthy waits until every connection is healthy or d passes.
func (ss *Streams) WaitHealthy(ctx context.Context, recent, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if ss.Healthy(recent) == ss.Len() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Close stops the drivers and closes the connections.
func (ss *Streams) Close() {
	ss.once.Do(func() {
		close(ss.stop)
		for _, s := range ss.list {
			s.conn.Close()
		}
		ss.wg.Wait()
	})
}

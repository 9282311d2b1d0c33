// Command kcp-go-peer is a kcp-go v5 endpoint for interoperability tests with ikago-proto's KCP.
//
// Its datagrams travel over standard input and output, each framed by a 2-byte big-endian
// length, so no network is involved: the test on the other end of the pipes decides what is
// lost. kcp-go runs exactly as IkaGo wires it: no kcp-go crypto, FEC with -ds/-ps shards,
// message mode, write delay off, the tuning applied after the session exists.
//
//	kcp-go-peer -mode echo   accept one session (ServeConn), echo every message until stdin ends
//	kcp-go-peer -mode dial   open session -conv (NewConn3), send -count messages, expect each
//	                         echoed back in order, exit 0 once all came back
//
// On exit it prints one JSON line to stderr: messages and bytes received, the largest message,
// and kcp-go's counters for FEC recoveries, rebuilt shards it had to discard, datagrams its KCP
// refused, and retransmissions.
package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	kcp "github.com/xtaci/kcp-go"
)

// pipeConn is a net.PacketConn over stdin and stdout; every datagram comes from and goes to peer
type pipeConn struct {
	in     *bufio.Reader
	out    *bufio.Writer
	mu     sync.Mutex
	closed chan struct{}
	once   sync.Once
}

// peer labels the far end; kcp-go keys sessions by it, nothing is ever sent to it
var peer = &net.UDPAddr{IP: net.IPv4(198, 18, 0, 2), Port: 1}

func (c *pipeConn) ReadFrom(b []byte) (int, net.Addr, error) {
	var head [2]byte
	if _, err := io.ReadFull(c.in, head[:]); err != nil {
		c.once.Do(func() { close(c.closed) })
		return 0, nil, err
	}
	size := int(binary.BigEndian.Uint16(head[:]))
	frame := make([]byte, size)
	if _, err := io.ReadFull(c.in, frame); err != nil {
		c.once.Do(func() { close(c.closed) })
		return 0, nil, err
	}
	return copy(b, frame), peer, nil
}

func (c *pipeConn) WriteTo(b []byte, _ net.Addr) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var head [2]byte
	binary.BigEndian.PutUint16(head[:], uint16(len(b)))
	if _, err := c.out.Write(head[:]); err != nil {
		return 0, err
	}
	if _, err := c.out.Write(b); err != nil {
		return 0, err
	}
	return len(b), c.out.Flush()
}

func (c *pipeConn) Close() error                       { return nil }
func (c *pipeConn) LocalAddr() net.Addr                { return &net.UDPAddr{IP: net.IPv4(198, 18, 0, 1), Port: 1} }
func (c *pipeConn) SetDeadline(t time.Time) error      { return nil }
func (c *pipeConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *pipeConn) SetWriteDeadline(t time.Time) error { return nil }

type tuning struct {
	mtu, sndwnd, rcvwnd, nodelay, interval, resend, nc int
	acknodelay                                         bool
}

func (t tuning) apply(s *kcp.UDPSession) {
	s.SetMtu(t.mtu)
	s.SetWindowSize(t.sndwnd, t.rcvwnd)
	s.SetACKNoDelay(t.acknodelay)
	s.SetNoDelay(t.nodelay, t.interval, t.resend, t.nc)
}

type summary struct {
	mu           sync.Mutex
	Messages     int    `json:"messages"`
	Bytes        int    `json:"bytes"`
	Largest      int    `json:"largest"`
	FecRecovered uint64 `json:"fec_recovered"`
	FecErrors    uint64 `json:"fec_errors"`
	KcpInErrors  uint64 `json:"kcp_in_errors"`
	Retransmits  uint64 `json:"retransmits"`
	Error        string `json:"error,omitempty"`
}

// record counts one received message of n bytes
func (s *summary) record(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Messages++
	s.Bytes += n
	if n > s.Largest {
		s.Largest = n
	}
}

// message is the test message number i: its index, then a pattern, sizes cycling through sizes
func message(i int, sizes []int) []byte {
	m := make([]byte, sizes[i%len(sizes)])
	binary.BigEndian.PutUint32(m, uint32(i))
	for j := 4; j < len(m); j++ {
		m[j] = byte(i + j)
	}
	return m
}

func main() {
	mode := flag.String("mode", "echo", "echo or dial")
	conv := flag.Uint("conv", 1, "conversation id (dial)")
	count := flag.Int("count", 200, "messages to send (dial)")
	deadline := flag.Duration("deadline", 60*time.Second, "give up after this long")
	ds := flag.Int("ds", 10, "data shards")
	ps := flag.Int("ps", 3, "parity shards")
	var t tuning
	flag.IntVar(&t.mtu, "mtu", 1400, "kcp mtu")
	flag.IntVar(&t.sndwnd, "sndwnd", 32, "send window")
	flag.IntVar(&t.rcvwnd, "rcvwnd", 32, "receive window")
	flag.IntVar(&t.nodelay, "nodelay", 0, "nodelay (0 or 1)")
	flag.IntVar(&t.interval, "interval", 100, "interval in ms")
	flag.IntVar(&t.resend, "resend", 0, "fast resend")
	flag.IntVar(&t.nc, "nc", 0, "no congestion control")
	flag.BoolVar(&t.acknodelay, "acknodelay", false, "ack no delay")
	flag.Parse()

	conn := &pipeConn{
		in:     bufio.NewReaderSize(os.Stdin, 1<<16),
		out:    bufio.NewWriterSize(os.Stdout, 1<<16),
		closed: make(chan struct{}),
	}
	var sum summary
	var err error
	switch *mode {
	case "echo":
		err = echo(conn, *ds, *ps, t, *deadline, &sum)
	case "dial":
		err = dial(conn, uint32(*conv), *ds, *ps, t, *count, *deadline, &sum)
	default:
		err = fmt.Errorf("unknown mode %q", *mode)
	}
	snmp := kcp.DefaultSnmp.Copy()
	sum.mu.Lock()
	defer sum.mu.Unlock()
	sum.FecRecovered = snmp.FECRecovered
	sum.FecErrors = snmp.FECErrs
	sum.KcpInErrors = snmp.KCPInErrors
	sum.Retransmits = snmp.RetransSegs
	if err != nil {
		sum.Error = err.Error()
	}
	line, _ := json.Marshal(&sum)
	fmt.Fprintln(os.Stderr, string(line))
	if err != nil {
		sum.mu.Unlock()
		os.Exit(1)
	}
}

// echo accepts one session and echoes every message until the pipe closes
func echo(conn *pipeConn, ds, ps int, t tuning, deadline time.Duration, sum *summary) error {
	l, err := kcp.ServeConn(nil, ds, ps, conn)
	if err != nil {
		return err
	}
	accepted := make(chan *kcp.UDPSession, 1)
	go func() {
		if s, err := l.AcceptKCP(); err == nil {
			accepted <- s
		}
	}()
	var s *kcp.UDPSession
	select {
	case s = <-accepted:
	case <-conn.closed:
		return errors.New("the pipe closed before a session arrived")
	case <-time.After(deadline):
		return errors.New("no session arrived")
	}
	t.apply(s)
	go func() {
		buf := make([]byte, 1<<16)
		for {
			n, err := s.Read(buf)
			if err != nil {
				return
			}
			sum.record(n)
			if _, err := s.Write(buf[:n]); err != nil {
				return
			}
		}
	}()
	select {
	case <-conn.closed:
	case <-time.After(deadline):
		return errors.New("deadline passed")
	}
	// let the last echoes flush before reporting
	time.Sleep(50 * time.Millisecond)
	return nil
}

// dial sends count messages over a new session and checks that each comes back, in order
func dial(conn *pipeConn, conv uint32, ds, ps int, t tuning, count int, deadline time.Duration, sum *summary) error {
	s, err := kcp.NewConn3(conv, peer, nil, ds, ps, conn)
	if err != nil {
		return err
	}
	t.apply(s)
	sizes := []int{20, 200, 1300, 64, 1000}
	go func() {
		for i := 0; i < count; i++ {
			if _, err := s.Write(message(i, sizes)); err != nil {
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 1<<16)
		for i := 0; i < count; i++ {
			n, err := s.Read(buf)
			if err != nil {
				done <- err
				return
			}
			sum.record(n)
			if want := message(i, sizes); !bytes.Equal(buf[:n], want) {
				done <- fmt.Errorf("echo %d: got %d bytes, want %d", i, n, len(want))
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(deadline):
		sum.mu.Lock()
		defer sum.mu.Unlock()
		return fmt.Errorf("deadline passed after %d of %d echoes", sum.Messages, count)
	}
}

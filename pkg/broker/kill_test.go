package broker_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/promocodes/promocodes/pkg/broker"
)

// childEnv makes the test binary run a broker (data dir, listen) until it is
// killed: see TestMain.
const childEnv = "PROMOCODES_BROKER_TEST_CHILD"

func TestMain(m *testing.M) {
	if v := os.Getenv(childEnv); v != "" {
		dir, listen, _ := strings.Cut(v, ",")
		b, err := broker.Start(context.Background(), broker.Config{DataDir: dir, Listen: listen, Partitions: 1, Topics: []string{"killed"}}, zap.NewNop())
		if err != nil {
			fmt.Println("ERR", err)
			os.Exit(2)
		}
		fmt.Println("ADDR", b.Addrs()[0])
		select {}
	}
	os.Exit(m.Run())
}

func startChild(t *testing.T, dir, listen string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+dir+","+listen)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ADDR ") {
		t.Fatalf("child broker: %q, %v", line, err)
	}
	return cmd, strings.TrimSpace(strings.TrimPrefix(line, "ADDR "))
}

// TestSIGKILLKeepsAcknowledgedData: without SyncWrites, what the broker
// acknowledged (acks=all) and the group offsets it accepted survive the
// broker process being killed (they are in the OS page cache).
func TestSIGKILLKeepsAcknowledgedData(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	dir := t.TempDir()
	cmd, addr := startChild(t, dir, "127.0.0.1:0")

	w := &kafkago.Writer{Addr: kafkago.TCP(addr), Topic: "killed", RequiredAcks: kafkago.RequireAll, BatchTimeout: time.Millisecond}
	for i := range 20 {
		if err := w.WriteMessages(ctx, kafkago.Message{Value: fmt.Appendf(nil, "v%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	r := newReader(addr, "killed", "killed-group")
	for range 8 {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.CommitMessages(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	r.Close()

	_, addr = startChild(t, dir, addr)
	r = newReader(addr, "killed", "killed-group")
	defer r.Close()
	for i := 8; i < 20; i++ {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("v%d", i); string(m.Value) != want {
			t.Fatalf("after SIGKILL got %q, want %s", m.Value, want)
		}
	}
}

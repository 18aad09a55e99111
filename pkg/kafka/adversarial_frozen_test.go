//go:build integration

package kafka_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/kafka"
	"github.com/promocodes/promocodes/pkg/kafka/kafkatest"
)

// Environment of the member process (TestFrozenLeaderProcess).
const (
	envMemberBrokers = "PROMOCODES_TEST_MEMBER_BROKERS"
	envMemberGroup   = "PROMOCODES_TEST_MEMBER_GROUP"
	envMemberTopics  = "PROMOCODES_TEST_MEMBER_TOPICS"
	// envMemberArm names a file: once it exists, the member leading the
	// group stops the process before its next SyncGroup.
	envMemberArm = "PROMOCODES_TEST_MEMBER_ARM"
)

// TestFrozenLeaderProcess is not a test of its own: it is the process
// TestAdversarialFrozenGroupLeader starts, two consumers in one group (a
// generator's two workers). Once the file envMemberArm names exists, the
// member leading the group stops the whole process (SIGSTOP) as it is about
// to send the assignment it computed (its SyncGroup): the moment of a
// rebalance a stopped process costs the group most. It prints a line per
// fetch, and "stopping" before it stops.
func TestFrozenLeaderProcess(t *testing.T) {
	brokers := os.Getenv(envMemberBrokers)
	if brokers == "" {
		t.Skip("the member process of TestAdversarialFrozenGroupLeader")
	}
	var mu sync.Mutex
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Printf(format+"\n", args...)
	}
	stopAtSync := func(line string) {
		// kafka-go logs this as the leader builds its SyncGroup request.
		if !strings.HasPrefix(line, "Syncing ") {
			return
		}
		if _, err := os.Stat(os.Getenv(envMemberArm)); err != nil {
			return
		}
		say("stopping")
		_ = syscall.Kill(os.Getpid(), syscall.SIGSTOP)
		// The stop reaches every thread a moment later: send nothing meanwhile.
		time.Sleep(time.Second)
	}
	cfg := cfgFor(strings.Split(brokers, ","), 4)
	topics := strings.Split(os.Getenv(envMemberTopics), ",")
	for range 2 {
		c, err := kafka.NewConsumerLogged(cfg, os.Getenv(envMemberGroup), topics, stopAtSync)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for {
				m, err := c.Fetch(context.Background())
				if err != nil {
					time.Sleep(250 * time.Millisecond)
					continue
				}
				say("fetched %s %d %d", m.Topic, m.Partition, m.Offset)
				_ = c.Commit(context.Background(), m)
			}
		}()
	}
	<-make(chan struct{}) // until the test kills the process
}

// A process holding two members of a consumer group (a generator's two
// workers) stops (SIGSTOP: a long GC pause, a frozen VM) while it leads a
// rebalance, as it is about to send the assignment: within
// kafka.StoppedMemberHandover the group must be stable with exactly its live
// members, and they must fetch from every partition. Four rounds, each with a
// new group: the broker's timers race, and the race was lost in about half
// the rounds.
func TestAdversarialFrozenGroupLeader(t *testing.T) {
	if testing.Short() {
		t.Skip("stops a process for up to a minute, four times")
	}
	brokers, backend := kafkatest.Brokers(t), "embedded"
	if strings.EqualFold(os.Getenv(kafkatest.EnvKafka), "docker") {
		backend = "apache"
	}
	// The partitions reach the live members within StoppedMemberHandover;
	// their first fetch of each takes a fetch round trip (MaxWait 250 ms)
	// after the 100 ms publishing cadence and the 100 ms polling here.
	bound := kafka.StoppedMemberHandover + 2*time.Second
	var took []string
	for round := range 4 {
		d := frozenLeaderRound(t, brokers, round)
		took = append(took, fmt.Sprintf("%.1f s", d.Seconds()))
		if d > bound {
			t.Errorf("round %d: the live members held every partition, all of them in the group, %v after the leader's process stopped; want at most %v",
				round, d.Round(100*time.Millisecond), bound)
		}
	}
	t.Logf("adversarial: %s [%s]: %s", "group leader's process stopped before its SyncGroup", backend, fmt.Sprintf(
		"stable with the 3 live members, every partition fetched, after %s (bound %v: heartbeat + max(session + heartbeat, 2 x rebalance timeout) + 1 s, + 2 s for the first fetch)",
		strings.Join(took, ", "), bound))
}

// frozenLeaderRound runs one round: the member process joins first (it leads
// the group), two live members join, a third joins (a rebalance), the member
// process stops before its SyncGroup. It returns how long after the stop the
// group was stable with the three live members holding every partition and
// each partition had been fetched by one of them.
func frozenLeaderRound(t *testing.T, brokers []string, round int) time.Duration {
	ctx := testCtx(t, 3*time.Minute)
	cfg := cfgFor(brokers, 4)
	topics := []string{kafkatest.Name(t, fmt.Sprintf("a%d", round)), kafkatest.Name(t, fmt.Sprintf("b%d", round))}
	group := kafkatest.Name(t, fmt.Sprintf("g%d", round))
	ensure(t, ctx, cfg, topics...)
	const partitions = 8
	stamp := func() string { return time.Now().Format("15:04:05.000") }

	arm := filepath.Join(t.TempDir(), "arm")
	child := exec.Command(os.Args[0], "-test.run=^TestFrozenLeaderProcess$")
	child.Env = append(os.Environ(), envMemberBrokers+"="+strings.Join(brokers, ","), envMemberGroup+"="+group,
		envMemberTopics+"="+strings.Join(topics, ","), envMemberArm+"="+arm)
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = child.Process.Kill()
		_ = child.Wait()
	}()
	stopped := make(chan time.Time, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "stopping" {
				stopped <- time.Now()
			}
		}
	}()
	// The member process is alone in the group: one of its members leads it.
	waitStableAssignment(t, ctx, cfg, group, 2, partitions)

	lctx, stop := context.WithCancel(ctx)
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		fetchedAt = map[string]time.Time{} // partition -> last fetch by a live member
		consumers []*kafka.Consumer
	)
	defer func() {
		stop()
		for _, c := range consumers {
			c.Close()
		}
		wg.Wait()
	}()
	live := func() {
		name := fmt.Sprintf("live %d", len(consumers))
		c, err := kafka.NewConsumerLogged(cfg, group, topics, func(line string) {
			if strings.Contains(line, "Failed to") || strings.Contains(line, "Leaving group") {
				t.Logf("%s %s: %s", stamp(), name, line)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		consumers = append(consumers, c)
		wg.Go(func() {
			for lctx.Err() == nil {
				m, err := c.Fetch(lctx)
				if err != nil {
					if lctx.Err() == nil {
						t.Logf("%s %s: fetch: %v", stamp(), name, err)
						time.Sleep(250 * time.Millisecond)
					}
					continue
				}
				mu.Lock()
				fetchedAt[m.Topic+"/"+strconv.Itoa(m.Partition)] = time.Now()
				mu.Unlock()
				_ = c.Commit(lctx, m)
			}
		})
	}
	live()
	live()
	waitStableAssignment(t, ctx, cfg, group, 4, partitions)

	p := newProducer(t, cfg)
	wg.Go(func() {
		for lctx.Err() == nil {
			var ms []kafka.Message
			for _, topic := range topics {
				for part := range partitions / len(topics) {
					// A batch key "0/<n>" goes to partition n.
					ms = append(ms, kafka.Message{Topic: topic, Key: fmt.Appendf(nil, "0/%d", part), Value: []byte("x")})
				}
			}
			_ = p.Publish(lctx, ms...)
			time.Sleep(100 * time.Millisecond)
		}
	})
	cl := newClient(t, cfg)
	var state string
	describe := func() kafka.Group {
		g, err := cl.DescribeGroup(lctx, group)
		if s := fmt.Sprintf("%s, %d members %v", g.State, len(g.Members), err); s != state {
			t.Logf("%s round %d: group %s", stamp(), round, s)
			state = s
		}
		return g
	}

	if err := os.WriteFile(arm, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	live() // a third live member: the group rebalances, led by the member process
	var stoppedAt time.Time
	select {
	case stoppedAt = <-stopped:
		t.Logf("%s round %d: the leader's process stopped before its SyncGroup", stamp(), round)
	case <-time.After(30 * time.Second):
		t.Fatalf("round %d: the member process never led a rebalance after the third member joined", round)
	}
	for {
		g := describe()
		held := 0
		for _, m := range g.Members {
			for _, ps := range m.Partitions {
				held += len(ps)
			}
		}
		mu.Lock()
		fetched := 0
		for _, at := range fetchedAt {
			if at.After(stoppedAt) {
				fetched++
			}
		}
		mu.Unlock()
		if g.State == "Stable" && len(g.Members) == 3 && held == partitions && fetched == partitions {
			return time.Since(stoppedAt)
		}
		if time.Since(stoppedAt) > 2*time.Minute {
			t.Fatalf("round %d: 2 minutes after the leader's process stopped: group %s with %d members holding %d partitions, %d of %d partitions fetched",
				round, g.State, len(g.Members), held, fetched, partitions)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

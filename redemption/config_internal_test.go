package redemption

import (
	"strings"
	"testing"

	"go.uber.org/zap"
)

// Validate judges a Config as given: a zero admission key is refused with
// its key (a configuration that says 0 would otherwise silently run on the
// default), while New fills the defaults first, so a Config built in code
// may leave them zero.
func TestValidateRefusesZeroAdmission(t *testing.T) {
	var c Config
	err := c.ValidateAdmission()
	for _, line := range []string{
		"admission.slots: must be in 1..10,000, or -1 to turn admission control off; got 0",
		"admission.maxQueue: must be in 1..1,000,000, got 0",
		"admission.maxWait: must be from 10ms to 10m, got 0s",
	} {
		if err == nil || !strings.Contains(err.Error(), line) {
			t.Errorf("zero Config: %v; want %q", err, line)
		}
	}
	c.setDefaults()
	if err := c.Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
	c.AdmissionSlots = -1 // off: the queue and wait keys are still checked
	c.AdmissionQueue = 0
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "admission.maxQueue: ") {
		t.Errorf("slots -1, maxQueue 0: %v", err)
	}
	if _, err := New(Config{}, nil, nil, zap.NewNop()); err != nil {
		t.Errorf("New(Config{}): %v", err)
	}
}

// Command promocodes is the single binary of the system: the deployables
// (api, generator, shovel), the embedded development stack (dev, broker), and
// the admin and SRE tools. It is the only place that reads configuration
// (viper) and builds the logger (zap); everything below it takes plain Config
// structs.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCmd().ExecuteContext(ctx); err != nil {
		msg, code := exitStatus(err)
		if msg != "" {
			fmt.Fprintln(os.Stderr, msg)
		}
		os.Exit(code)
	}
}

// exitStatus is what the process prints on stderr for a command's error, and
// its exit code: an exitError's own message and code, else "error: ..." and 1.
func exitStatus(err error) (string, int) {
	var ex *exitError
	if errors.As(err, &ex) {
		return ex.msg, ex.code
	}
	return "error: " + err.Error(), 1
}

// exitError ends the process with a specific exit code (e.g. `codes check`
// answers 1 for an invalid code) after printing msg on stderr.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

//go:build !faults

package app

import (
	"go.uber.org/zap"

	"github.com/promocodes/promocodes/generator"
	"github.com/promocodes/promocodes/shovel"
)

// The shipped build has no fault injection (see faults.go, built only with
// -tags faults): these hand the parts on as they are.

func generatorFaults(st generator.Store, _ *zap.Logger) generator.Store { return st }

func shovelFaults(pub shovel.Publisher, _ *zap.Logger) shovel.Publisher { return pub }

//go:build integration

package main

import "testing"

func plotCurve(b *testing.B, cfg benchConfig, r runResult) {}

package main

import "github.com/spf13/cobra"

// newCodesCmd: placeholder until the code engine's CLI lands (issue 2).
func newCodesCmd() *cobra.Command {
	return &cobra.Command{Use: "codes", Short: "Code formats: preview and offline check"}
}

package main

import (
	"github.com/spf13/cobra"
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "promocodes",
		Short:         "Generate, validate and redeem promotion codes at scale",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newDevCmd(),
		newAPICmd(),
		newGeneratorCmd(),
		newShovelCmd(),
		newMigrateCmd(),
		newTopicsCmd(),
		newRedemptionsCmd(),
		newReconcileCmd(),
		newBrokerCmd(),
		newPromotionsCmd(),
		newCodesCmd(),
	)
	return root
}

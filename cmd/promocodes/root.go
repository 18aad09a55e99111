package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/promocodes/promocodes/pkg/buildinfo"
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "promocodes",
		Short:         "Generate, validate and redeem promotion codes at scale",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       buildinfo.Read().Short(),
	}
	root.SetVersionTemplate(buildinfo.Read().String() + "\n")
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
		newVersionCmd(),
	)
	return root
}

func newVersionCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the build: module version, VCS revision and whether the tree was dirty",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in := buildinfo.Read()
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(in)
			}
			_, err := fmt.Fprintln(cmd.OutOrStdout(), in.String())
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

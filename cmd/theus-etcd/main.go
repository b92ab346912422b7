// Command theus-etcd runs a small etcd cluster on loopback for trying
// theus-supervisor --store etcd on one machine (scripts/cluster.sh): n
// members of the embedded etcd server in this one process, each with its
// data under --dir, on free 127.0.0.1 ports. It prints the members'
// client URLs, comma-separated, on one line of stdout (and to
// --endpoints-file) once every member serves, and stops them on SIGINT or
// SIGTERM. It is not for production: a real cluster runs its members on
// separate hosts.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/theus-run/theus/internal/etcdtest"
)

func main() {
	var dir, endpointsFile string
	var members int
	var quota int64
	cmd := &cobra.Command{
		Use:           "theus-etcd",
		Short:         "Run an etcd cluster of embedded members on loopback (for scripts/cluster.sh)",
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(*cobra.Command, []string) error {
			if dir == "" {
				return errors.New("--dir is required")
			}
			if members < 1 {
				return fmt.Errorf("--members %d: want at least 1", members)
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if quota < 0 {
				return fmt.Errorf("--quota-bytes %d: want 0 (etcd's default) or more", quota)
			}
			cl, err := etcdtest.StartQuota(dir, members, quota)
			if err != nil {
				return err
			}
			defer cl.Close()
			eps := strings.Join(cl.Endpoints(), ",")
			if endpointsFile != "" {
				if err := os.WriteFile(endpointsFile+".tmp", []byte(eps+"\n"), 0o644); err != nil {
					return err
				}
				if err := os.Rename(endpointsFile+".tmp", endpointsFile); err != nil {
					return err
				}
			}
			fmt.Println(eps)
			<-ctx.Done()
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "directory of the members' data (required)")
	cmd.Flags().IntVar(&members, "members", 3, "number of members")
	cmd.Flags().StringVar(&endpointsFile, "endpoints-file", "", "also write the client URLs to this file, once every member serves")
	cmd.Flags().Int64Var(&quota, "quota-bytes", 0, "each member's backend quota in bytes (0: etcd's default, 2 GiB; past it etcd refuses writes until compacted)")
	if err := cmd.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "theus-etcd:", err)
		os.Exit(1)
	}
}

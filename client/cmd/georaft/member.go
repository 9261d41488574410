package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/georaft/georaft/client"
	"github.com/georaft/georaft/client/bench"
	"github.com/georaft/georaft/client/cli"
	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
)

const memberLong = `Changes who is in the cluster at run time (docs/membership.md). Any member takes a
change and passes it to the leader; each returns once the change is applied.

A new node joins as a learner: it receives the log but does not vote. It is promoted once it
has caught up (georaftd started with --join asks for that itself). To replace a member, start
the new node with --join --replaces OLD, or add it, wait, and run "member replace OLD NEW":
its promotion and the old member's removal are one change, so the number of voters never
drops. Removed ids are never given out again.

  georaft member list
  georaft member add --learner --peer-address HOST:PORT [--client-address HOST:PORT] [--region R] [--id N]
  georaft member promote ID
  georaft member remove ID
  georaft member replace OLD_ID NEW_ID`

func (a *app) memberCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "member",
		Short: "List, add (as learner), promote, remove or replace cluster members",
		Long:  memberLong,
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(a.memberListCommand(), a.memberAddCommand(), a.memberPromoteCommand(), a.memberRemoveCommand(),
		a.memberReplaceCommand())
	return cmd
}

func parseMemberID(what, s string) (uint64, error) {
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil || id == 0 {
		return 0, &cli.UsageError{Problem: fmt.Sprintf("%s %q: want a member id (a positive integer)", what, s)}
	}
	return id, nil
}

func (a *app) memberListCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "Every member: id, role, region, addresses, and from the leader its lag and last contact",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.oneShot(cmd, "member list", func(cmd *cobra.Command, c *client.Client) error {
				resp, err := c.MemberList(cmd.Context())
				if err != nil {
					return err
				}
				printMembers(a.printer(), resp)
				return nil
			})
		},
	}
}

func roleWord(r georaftv1.MemberRole) string {
	return strings.ToLower(strings.TrimPrefix(r.String(), "MEMBER_ROLE_"))
}

type jsonMember struct {
	ID              uint64  `json:"id"`
	Role            string  `json:"role"`
	Region          string  `json:"region"`
	PeerAddress     string  `json:"peer_address"`
	ClientAddress   string  `json:"client_address"`
	ReadLeaseHolder bool    `json:"read_lease_holder,omitempty"`
	Leader          bool    `json:"leader,omitempty"`
	Lag             *uint64 `json:"lag_entries,omitempty"`
	LastContactMs   *int64  `json:"last_contact_ms,omitempty"`
	Healthy         *bool   `json:"healthy,omitempty"`
}

func printMembers(p cli.Printer, resp *georaftv1.ListMembersResponse) {
	var rows []jsonMember
	for _, ms := range resp.GetMembers() {
		m := ms.GetMember()
		r := jsonMember{ID: m.GetId(), Role: roleWord(m.GetRole()), Region: m.GetRegion(), PeerAddress: m.GetPeerAddress(),
			ClientAddress: m.GetClientAddress(), ReadLeaseHolder: m.GetReadLeaseHolder(), Leader: m.GetId() == resp.GetLeaderId()}
		if h := ms.GetHealth(); h != nil {
			lag, healthy := h.GetLag(), h.GetHealthy()
			r.Lag, r.Healthy = &lag, &healthy
			if age := h.GetLastContactAgeNanos(); age >= 0 {
				ms := age / int64(time.Millisecond)
				r.LastContactMs = &ms
			}
		}
		rows = append(rows, r)
	}
	if p.JSON {
		p.Object(map[string]any{"ok": true, "op": "member list", "cluster_id": resp.GetClusterId(), "leader_id": resp.GetLeaderId(),
			"initial_voters": resp.GetInitialVoters(), "voters_outgoing": resp.GetVotersOutgoing(), "members": rows})
		return
	}
	table := [][]string{{"id", "role", "region", "peer address", "client address", "lag", "last contact", "health"}}
	for _, r := range rows {
		role := r.Role
		if r.Leader {
			role += " (leader)"
		}
		if r.ReadLeaseHolder {
			role += ", read lease"
		}
		lag, contact, health := "-", "-", "-"
		if r.Lag != nil {
			lag = strconv.FormatUint(*r.Lag, 10)
			health = "healthy"
			if !*r.Healthy {
				health = "NOT HEARD FROM"
			}
		}
		if r.LastContactMs != nil {
			contact = fmt.Sprintf("%d ms", *r.LastContactMs)
		}
		if r.Leader || r.Role == "removed" {
			lag, contact, health = "-", "-", "-"
		}
		table = append(table, []string{strconv.FormatUint(r.ID, 10), role, r.Region, r.PeerAddress, r.ClientAddress, lag, contact, health})
	}
	io.WriteString(p.Out, bench.Columns(table, map[int]bool{0: true, 5: true, 6: true}))
	if out := resp.GetVotersOutgoing(); len(out) > 0 {
		fmt.Fprintf(p.Out, "a change of voters is under way: voters %v are going out\n", out)
	}
}

func (a *app) memberAddCommand() *cobra.Command {
	var learner bool
	req := &georaftv1.AddMemberRequest{}
	cmd := &cobra.Command{
		Use:   "add --learner --peer-address HOST:PORT",
		Short: "Add a learner; start the node with --join and the id this prints",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !learner {
				return &cli.UsageError{Problem: "members are added as learners and promoted once caught up: pass --learner",
					Hint: "georaft member add --learner --peer-address HOST:PORT"}
			}
			return a.oneShot(cmd, "member add", func(cmd *cobra.Command, c *client.Client) error {
				resp, err := c.MemberAdd(cmd.Context(), req)
				if err != nil {
					return err
				}
				m := resp.GetMember()
				// Index 0: an earlier add of the same member took effect (its answer was lost, or
				// it timed out), and this one answers with that member.
				existing := resp.GetIndex() == 0
				if a.printer().JSON {
					a.printer().Object(map[string]any{"ok": true, "op": "member add", "id": m.GetId(), "index": resp.GetIndex(),
						"initial_voters": resp.GetInitialVoters(), "already_added": existing})
					return nil
				}
				what := "added learner"
				if existing {
					what = "already added: learner"
				}
				fmt.Fprintf(a.stdout, "%s %d (peer %s); start it with: georaftd --node-id %d --join <any member's client address> ...\n",
					what, m.GetId(), m.GetPeerAddress(), m.GetId())
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.BoolVar(&learner, "learner", false, "add as a learner (required: voters are made by promotion)")
	f.StringVar(&req.PeerAddress, "peer-address", "", "where the members dial the new node (required)")
	f.StringVar(&req.ClientAddress, "client-address", "", "where clients reach it (it records its own when it starts)")
	f.StringVar(&req.Region, "region", "", "its region (it records its own when it starts)")
	f.Uint64Var(&req.Id, "id", 0, "its member id (0: the next unused one); with TLS, the id its certificate names")
	_ = cmd.MarkFlagRequired("peer-address")
	return cmd
}

func (a *app) memberPromoteCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "promote ID",
		Short: "Make a caught-up learner a voter (refused while it is behind)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseMemberID("member", args[0])
			if err != nil {
				return err
			}
			return a.memberChange(cmd, "member promote", fmt.Sprintf("promoted %d to voter", id), func(c *client.Client) (uint64, error) {
				return c.MemberPromote(cmd.Context(), id)
			})
		},
	}
}

func (a *app) memberRemoveCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "remove ID",
		Short: "Remove a voter or a learner; its id is never used again",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseMemberID("member", args[0])
			if err != nil {
				return err
			}
			return a.memberChange(cmd, "member remove", fmt.Sprintf("removed %d", id), func(c *client.Client) (uint64, error) {
				return c.MemberRemove(cmd.Context(), id)
			})
		},
	}
}

func (a *app) memberReplaceCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "replace OLD_ID NEW_ID",
		Short: "Promote learner NEW_ID and remove OLD_ID in one change",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			oldID, err := parseMemberID("old member", args[0])
			if err != nil {
				return err
			}
			newID, err := parseMemberID("new member", args[1])
			if err != nil {
				return err
			}
			return a.memberChange(cmd, "member replace", fmt.Sprintf("%d replaced %d", newID, oldID), func(c *client.Client) (uint64, error) {
				return c.MemberReplace(cmd.Context(), oldID, newID)
			})
		},
	}
}

func (a *app) memberChange(cmd *cobra.Command, op, done string, change func(*client.Client) (uint64, error)) error {
	return a.oneShot(cmd, op, func(cmd *cobra.Command, c *client.Client) error {
		index, err := change(c)
		if err != nil {
			return err
		}
		if a.printer().JSON {
			a.printer().Object(map[string]any{"ok": true, "op": op, "index": index})
			return nil
		}
		fmt.Fprintf(a.stdout, "%s (applied at index %d)\n", done, index)
		return nil
	})
}

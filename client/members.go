package client

import (
	"context"

	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
)

// Membership changes (docs/membership.md). Any member takes them and passes them to its
// leader; each returns once the change is applied on the member that answered.

// MemberList lists the members with their roles and addresses, and on the leader's answer
// their health. It asks the leader's view (a linearizable list), through any member.
func (c *Client) MemberList(ctx context.Context) (*georaftv1.ListMembersResponse, error) {
	var resp *georaftv1.ListMembersResponse
	_, _, err := c.run(ctx, "member list", toLeader, func(ctx context.Context, ep *endpoint) error {
		r, err := georaftv1.NewMembershipServiceClient(ep.conn).ListMembers(ctx, &georaftv1.ListMembersRequest{Linearizable: true})
		resp = r
		return err
	})
	return resp, err
}

// MemberAdd adds a learner at peerAddress (id 0: the leader gives the next unused id).
func (c *Client) MemberAdd(ctx context.Context, req *georaftv1.AddMemberRequest) (*georaftv1.AddMemberResponse, error) {
	var resp *georaftv1.AddMemberResponse
	_, _, err := c.run(ctx, "member add", toLeader, func(ctx context.Context, ep *endpoint) error {
		r, err := georaftv1.NewMembershipServiceClient(ep.conn).AddMember(ctx, req)
		resp = r
		return err
	})
	return resp, err
}

// MemberPromote makes learner id a voter; the leader refuses while it is behind.
func (c *Client) MemberPromote(ctx context.Context, id uint64) (uint64, error) {
	var index uint64
	_, _, err := c.run(ctx, "member promote", toLeader, func(ctx context.Context, ep *endpoint) error {
		r, err := georaftv1.NewMembershipServiceClient(ep.conn).PromoteMember(ctx, &georaftv1.PromoteMemberRequest{Id: id})
		index = r.GetIndex()
		return err
	})
	return index, err
}

// MemberRemove removes member id (a voter or a learner).
func (c *Client) MemberRemove(ctx context.Context, id uint64) (uint64, error) {
	var index uint64
	_, _, err := c.run(ctx, "member remove", toLeader, func(ctx context.Context, ep *endpoint) error {
		r, err := georaftv1.NewMembershipServiceClient(ep.conn).RemoveMember(ctx, &georaftv1.RemoveMemberRequest{Id: id})
		index = r.GetIndex()
		return err
	})
	return index, err
}

// MemberReplace promotes learner newID and removes oldID in one change.
func (c *Client) MemberReplace(ctx context.Context, oldID, newID uint64) (uint64, error) {
	var index uint64
	_, _, err := c.run(ctx, "member replace", toLeader, func(ctx context.Context, ep *endpoint) error {
		r, err := georaftv1.NewMembershipServiceClient(ep.conn).ReplaceMember(ctx, &georaftv1.ReplaceMemberRequest{OldId: oldID, NewId: newID})
		index = r.GetIndex()
		return err
	})
	return index, err
}

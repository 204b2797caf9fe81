// SPDX-License-Identifier: GPL-2.0
// tc_pairs.bpf.c -- SeCoNetBench's tc programs for the host-side ends of the container veths.
// All run at tc clsact ingress in direct-action mode, i.e. on the packets a container sends.
//
// Sections (tc's "sec" argument):
//   filter             packet filter: an IPv4 packet passes only when its (saddr, daddr) pair is
//                      a key of the map allowed_pairs; ARP passes; everything else is dropped.
//   forward            network solution: forwards between container veths the way eBPF CNIs do,
//                      with bpf_fib_lookup() in the host namespace and bpf_redirect_peer() straight
//                      into the destination container (no host IP stack, no host netfilter).
//   forward_filter     both in one program: the pair lookup first, then the forwarding. The ebpf
//                      filter swaps forward for it, so a packet runs one program, not two.
//
// allowed_pairs is pinned by name (LIBBPF_PIN_BY_NAME): every attachment of this object in one
// deployment shares one map, filled from user space with bpftool.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define AF_INET 2 /* from sys/socket.h, which is not meant for the bpf target */

struct pair {
	__u32 saddr; /* network byte order */
	__u32 daddr; /* network byte order */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	/* the whitelist plus up to 100 000 never-matching entries (extra_rules in the config) */
	__uint(max_entries, 131072);
	/* allocate entries on insert: a preallocated map this size would cost ~10 MB per deployment */
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct pair);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} allowed_pairs SEC(".maps");

/* The Ethernet and IPv4 headers in the linear part of the skb, or NULL for a runt packet. */
static __always_inline struct ethhdr *headers(struct __sk_buff *skb)
{
	const __u32 wanted = sizeof(struct ethhdr) + sizeof(struct iphdr);
	struct ethhdr *eth = (void *)(long)skb->data;

	/* veth delivers them linear; pull them only when not (it fails only for runt frames) */
	if ((void *)eth + wanted > (void *)(long)skb->data_end) {
		if (bpf_skb_pull_data(skb, wanted) < 0)
			return NULL;
		eth = (void *)(long)skb->data;
	}
	if ((void *)(eth + 1) > (void *)(long)skb->data_end)
		return NULL;
	return eth;
}

static __always_inline struct iphdr *ipv4(struct __sk_buff *skb, struct ethhdr *eth)
{
	struct iphdr *ip = (void *)(eth + 1);

	if (eth->h_proto != bpf_htons(ETH_P_IP) || (void *)(ip + 1) > (void *)(long)skb->data_end)
		return NULL;
	return ip;
}

/* Default deny: ARP passes (nothing resolves otherwise), IPv4 only for whitelisted pairs. */
static __always_inline int allowed(struct __sk_buff *skb, struct ethhdr *eth)
{
	struct iphdr *ip;
	struct pair key;

	if (eth->h_proto == bpf_htons(ETH_P_ARP))
		return 1;
	ip = ipv4(skb, eth);
	if (!ip)
		return 0;
	key.saddr = ip->saddr;
	key.daddr = ip->daddr;
	return bpf_map_lookup_elem(&allowed_pairs, &key) != NULL;
}

/* Route an IPv4 packet in the host's FIB and hand it straight to the destination container.
 * Whatever the program cannot forward itself goes to the host stack (TC_ACT_OK): ARP, packets to
 * the host, and the first packet to a container whose neighbour entry does not exist yet (the
 * stack resolves it for the following packets). */
static __always_inline int forward(struct __sk_buff *skb, struct ethhdr *eth)
{
	struct bpf_fib_lookup fib = {};
	struct iphdr *ip = ipv4(skb, eth);
	__u32 check;

	if (!ip || ip->ttl <= 1)
		return TC_ACT_OK; /* the stack sends the ICMP time-exceeded */
	fib.family = AF_INET;
	fib.tos = ip->tos;
	fib.l4_protocol = ip->protocol;
	fib.tot_len = bpf_ntohs(ip->tot_len);
	fib.ipv4_src = ip->saddr;
	fib.ipv4_dst = ip->daddr;
	fib.ifindex = skb->ingress_ifindex;
	if (bpf_fib_lookup(skb, &fib, sizeof(fib), 0) != BPF_FIB_LKUP_RET_SUCCESS)
		return TC_ACT_OK;

	/* a router decrements the TTL; incremental checksum update as in RFC 1624 */
	check = ip->check;
	check += bpf_htons(0x0100);
	ip->check = (__u16)(check + (check >= 0xFFFF));
	ip->ttl--;
	__builtin_memcpy(eth->h_dest, fib.dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, fib.smac, ETH_ALEN);
	return bpf_redirect_peer(fib.ifindex, 0);
}

SEC("filter")
int tc_filter(struct __sk_buff *skb)
{
	struct ethhdr *eth = headers(skb);

	return eth && allowed(skb, eth) ? TC_ACT_OK : TC_ACT_SHOT;
}

SEC("forward")
int tc_forward(struct __sk_buff *skb)
{
	struct ethhdr *eth = headers(skb);

	return eth ? forward(skb, eth) : TC_ACT_OK;
}

SEC("forward_filter")
int tc_forward_filter(struct __sk_buff *skb)
{
	struct ethhdr *eth = headers(skb);

	if (!eth || !allowed(skb, eth))
		return TC_ACT_SHOT;
	return forward(skb, eth);
}

char _license[] SEC("license") = "GPL";

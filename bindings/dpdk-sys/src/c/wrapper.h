/* The DPDK headers dpdk-sys binds, plus the shim's declarations. */
#ifndef MESHPLANE_DPDK_WRAPPER_H
#define MESHPLANE_DPDK_WRAPPER_H

#include <rte_config.h>
#include <rte_eal.h>
#include <rte_lcore.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_udp.h>

#include "shim.h"

#endif

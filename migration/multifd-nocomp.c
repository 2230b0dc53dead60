/*
 * multifd "none": a packet's payload is its normal pages as they are.
 * The source writes them straight from guest RAM (one iovec per page);
 * the destination reads them straight into guest RAM. No copy on either
 * side.
 */
#include <errno.h>

#include "multifd.h"

static bool nocomp_send_setup(MultiFDSendParams *p, GError **errp)
{
    return true;
}

static void nocomp_send_cleanup(MultiFDSendParams *p)
{
}

static bool nocomp_send_prepare(MultiFDSendParams *p, MultiFDPayload *pl,
                                GError **errp)
{
    for (uint32_t i = 0; i < pl->n; i++) {
        pl->iov[i].iov_base = pl->host[i];
        pl->iov[i].iov_len = GW_PAGE_SIZE;
    }
    pl->iovcnt = (int)pl->n;
    pl->payload_size = (uint32_t)(pl->n * GW_PAGE_SIZE);
    return true;
}

static bool nocomp_recv_setup(MultiFDRecvParams *p, GError **errp)
{
    return true;
}

static void nocomp_recv_cleanup(MultiFDRecvParams *p)
{
}

static bool nocomp_recv_pages(MultiFDRecvParams *p, MultiFDPayload *pl,
                              GError **errp)
{
    int r;

    if (pl->payload_size != (uint64_t)pl->n * GW_PAGE_SIZE) {
        g_set_error(errp, GW_ERROR, GW_ERROR_GENERIC,
                    "multifd: received packet with size %u and expected "
                    "size %u",
                    pl->payload_size, (unsigned)(pl->n * GW_PAGE_SIZE));
        return false;
    }
    for (uint32_t i = 0; i < pl->n; i++) {
        pl->iov[i].iov_base = pl->host[i];
        pl->iov[i].iov_len = GW_PAGE_SIZE;
    }
    r = mig_channel_readv_all(p->c, pl->iov, (int)pl->n);
    if (r <= 0) {
        gw_error_errno(errp, r == 0 ? ENODATA : -r,
                       "multifd: channel %d: reading pages", p->id);
        return false;
    }
    return true;
}

const MultiFDMethods multifd_nocomp_ops = {
    .name = "none",
    .send_setup = nocomp_send_setup,
    .send_cleanup = nocomp_send_cleanup,
    .send_prepare = nocomp_send_prepare,
    .recv_setup = nocomp_recv_setup,
    .recv_cleanup = nocomp_recv_cleanup,
    .recv_pages = nocomp_recv_pages,
};

/*
 * godwit's hypercall port (include/godwit/hypercall-abi.h): probe and the
 * one call primitive. A call is a 32-bit OUT of the request block's
 * guest-physical address (identity mapped, so its address) to GW_HC_PORT;
 * the host fills status and ret[] before the OUT retires.
 */
#include "rt.h"

bool gw_probe(void)
{
    return inl(GW_HC_PORT) == GW_HC_MAGIC;
}

int32_t gw_call(GwHcRequest *req, uint32_t op, uint64_t a0, uint64_t a1,
                uint64_t a2, uint64_t a3)
{
    req->op = op;
    req->status = GW_HC_ENOSYS; /* stays so if nobody answers */
    req->arg[0] = a0;
    req->arg[1] = a1;
    req->arg[2] = a2;
    req->arg[3] = a3;
    req->ret[0] = req->ret[1] = req->ret[2] = req->ret[3] = 0;
    /* The "memory" clobber orders the stores above and the loads after. */
    outl(GW_HC_PORT, (uint32_t)(uintptr_t)req);
    return req->status;
}

/* Registers the object types crypto/ owns. */
#include "crypto/authz.h"
#include "crypto/init.h"
#include "crypto/tls.h"

void crypto_objects_register(void)
{
    tls_register_types();
    authz_register_types();
}

/* crypto/'s object types: tls-creds-{x509,psk,anon}, authz-{simple,list}. */
#ifndef CRYPTO_INIT_H
#define CRYPTO_INIT_H

/* Explicit, once from main() (idempotent), before -object is applied. */
void crypto_objects_register(void);

#endif /* CRYPTO_INIT_H */

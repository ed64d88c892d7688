import { SignJWT } from 'jose';

const TOKEN_LIFETIME = '1h';

/** An HS256 token that may produce to and consume from `topic` (docs/security.md's claims). */
export async function mintToken(secret: string, subject: string, topic: string, admin = false): Promise<string> {
  return new SignJWT({ tributary: { produce: [topic], consume: [topic], admin } })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(subject)
    .setIssuedAt()
    .setExpirationTime(TOKEN_LIFETIME)
    .sign(new TextEncoder().encode(secret));
}

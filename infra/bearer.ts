// Station keys, the admin token and user tokens all travel as `Authorization: Bearer <credential>`.

/** The credential of a Bearer authorization header, or undefined when there is none. */
export function bearerOf(authorization: string | undefined): string | undefined {
  return /^Bearer\s+(\S+)$/i.exec(authorization ?? '')?.[1];
}

// Every projection, by name: what the projector runs and what admins rebuild.
import { captionsProjection } from './captions/projection.ts';
import type { Projection } from './projection.ts';
import { streamsProjection } from './streams/projection.ts';
import { uploadsProjection } from './uploads/projection.ts';
import { encodesProjection } from './encodes/projection.ts';
import { analyticsProjection } from './analytics/projection.ts';

export const PROJECTIONS: Record<string, Projection> = {
  [captionsProjection.name]: captionsProjection,
  [streamsProjection.name]: streamsProjection,
  [uploadsProjection.name]: uploadsProjection,
  [encodesProjection.name]: encodesProjection,
  [analyticsProjection.name]: analyticsProjection,
};

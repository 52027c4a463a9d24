/** The YUV matrix of a picture without a colour description, as players read one. */

/** A YUV matrix. */
export type ColourMatrix = 'bt601' | 'bt709';

/** The matrix untagged video of `height` lines is read with: BT.709 from 720 lines, BT.601 below. */
export function untaggedMatrix(height: number): ColourMatrix {
  return height >= 720 ? 'bt709' : 'bt601';
}

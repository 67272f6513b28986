// A page's main read: the API's answer, or null after the page shows "Not found" (with a way
// back) when the API answers 404, or a status in `also` (for customers 403 too: another
// customer's ticket or survey is not theirs to know about). Other errors go to the caller.
import { get, ApiError } from "./api.js";
import { t } from "./i18n.js";
import { h, link } from "./ui.js";

export async function getOrNotFound(path, render, { also = [], back = null } = {}) {
  try {
    return await get(path);
  } catch (error) {
    if (!(error instanceof ApiError) || (error.status !== 404 && !also.includes(error.status))) throw error;
    render(h("h1", { id: "not-found" }, t("not_found")), back ? h("p", {}, link(back[0], back[1])) : null);
    return null;
  }
}

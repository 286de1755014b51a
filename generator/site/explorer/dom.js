/* Two small helpers that build the panel's elements. */

export function element(tag, attributes, children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key === "className") node.className = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children || []) node.append(child);
  return node;
}

export function canvas(width, height, className, label) {
  const node = element("canvas", { className, width, height, role: label ? "img" : null, "aria-label": label });
  return node;
}

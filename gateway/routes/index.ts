export { routesOf, indexRoutes, resolveRoute, servingMethod, type Route, type RouteIndex, type RouteMatch } from "./route-table.js";
export { parsePathTemplate, matchPath, openApiPath, type PathTemplate, type TemplateSegment } from "./path-template.js";
